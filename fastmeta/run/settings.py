"""A run configuration checked against the registries, once, before anything is built.

:func:`resolve_config` gives the configuration with canonical names and typed option values,
or raises ``ValueError`` naming the key, what is wrong and the valid choices; it imports no
torch. The other functions hand each builder its own part: the dataset's typed options, the
algorithm's, the image size.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from fastmeta.algorithms.registry import SHARED_SETTINGS, AlgorithmSpec, algorithm_spec
from fastmeta.algorithms.registry import algorithm_specs as all_algorithms
from fastmeta.config import apply_overrides, from_dict, to_dict
from fastmeta.datasets.errors import DatasetError
from fastmeta.datasets.registry import DATASETS, DatasetInfo, dataset_info
from fastmeta.run_config import AlgorithmConfig, DataConfig, RunConfig, SamplerConfig

MOVED = {"algorithm.distance": "algorithm.options.distance"}
"""Settings of fastmeta 0.1 that live elsewhere now (an override of the old name still works)."""
# settings whose effect a user counts on: setting one a method ignores is an error, not a warning
_REFUSED = {
    "adapt": "leave algorithm.adapt unset",
    "checkpoint_inner_steps": "leave it unset",
}


def upgrade_override(item: str) -> str:
    """A ``key=value`` override with a moved key renamed (see :data:`MOVED`)."""
    key, sep, value = item.partition("=")
    return f"{MOVED.get(key, key)}{sep}{value}"


def apply_run_overrides(config: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """``config`` with ``key=value`` overrides applied, as the command line does.

    Moved keys are renamed (:data:`MOVED`). Switching ``data.dataset`` starts the new dataset
    from its own defaults: the old one's root, image size and settings are dropped unless given
    in the same overrides; switching ``algorithm.name`` likewise drops the old method's options
    and resets the shared inner-loop settings the new one does not read.
    """
    overrides = [upgrade_override(item) for item in overrides]
    given = {item.partition("=")[0] for item in overrides}
    updated = apply_overrides(config, overrides)
    if updated.data.dataset != config.data.dataset:
        data = updated.data
        updated = replace(
            updated,
            data=replace(
                data,
                root=data.root if "data.root" in given else None,
                image_size=data.image_size if "data.image_size" in given else None,
                options={k: v for k, v in data.options.items() if _given(given, "data", k)},
            ),
        )
    if (
        updated.algorithm.name != config.algorithm.name
        and updated.algorithm.name in all_algorithms()
    ):
        algorithm, defaults = updated.algorithm, AlgorithmConfig()
        reads = algorithm_spec(algorithm.name).settings
        reset = {
            key: getattr(defaults, key)
            for key in SHARED_SETTINGS
            if key not in reads and f"algorithm.{key}" not in given
        }
        options = {
            k: v for k, v in algorithm.options.items() if _given(given, "algorithm.options", k)
        }
        updated = replace(updated, algorithm=replace(algorithm, options=options, **reset))
    return updated


def _given(given: set[str], section: str, key: str) -> bool:
    """Whether an override named ``section.key`` or the whole ``section``."""
    return f"{section}.{key}" in given or section in given


def resolve_config(config: RunConfig) -> RunConfig:
    """``config`` checked against the dataset and algorithm registries, with canonical names
    and typed option values."""
    data = resolve_data(config.data)
    algorithm = resolve_algorithm(config.algorithm, config.sampler)
    return replace(config, data=data, algorithm=algorithm)


def resolve_data(data: DataConfig) -> DataConfig:
    """The ``data`` section with the dataset's canonical name and its options typed."""
    try:
        info = dataset_info(data.dataset)
    except DatasetError:
        raise ValueError(
            f"data.dataset={data.dataset!r} is not valid; choose one of {', '.join(DATASETS)}"
        ) from None
    if info.image_size is None:  # generated tasks: no image settings
        images = {"root": None, "image_size": None, "train_classes": "train", "augment": "none"}
        given = [k for k, default in images.items() if getattr(data, k) != default]
        if given:
            raise ValueError(
                f"data.{given[0]} applies to image datasets; {info.name} generates its tasks: "
                f"leave it unset"
            )
    if data.image_size is not None and data.image_size < 1:
        raise ValueError(f"data.image_size={data.image_size} must be a positive number of pixels")
    options = _typed(info, data.options)
    return replace(data, dataset=info.name, options=options)


def _typed(info: DatasetInfo, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the dataset's option dataclass, values coerced, defaults not
    filled in (so a configuration says only what was set)."""
    names = [f.name for f in fields(info.options)] if info.options is not None else []
    unknown = [key for key in given if key not in names]
    if unknown:
        common = [f.name for f in fields(DataConfig) if f.name != "options"]
        raise ValueError(
            f"unknown setting 'data.{unknown[0]}' for data.dataset={info.name}; valid settings "
            f"of data: {', '.join(common + names)}"
        )
    if info.options is None or not given:
        return dict(given)
    typed = to_dict(from_dict(info.options, given, "data."))
    return {key: typed[key] for key in given}


def data_options(data: DataConfig) -> Any:
    """The typed options dataclass of ``data``'s dataset (``None`` when it has none)."""
    info = dataset_info(data.dataset)
    return None if info.options is None else from_dict(info.options, data.options, "data.")


def image_size(data: DataConfig) -> int:
    """The side of the images a run reads: ``data.image_size``, else the dataset's usual one."""
    info = dataset_info(data.dataset)
    size = data.image_size or info.image_size
    if size is None:
        raise ValueError(f"{info.name} generates its tasks; it has no images")
    return size


def resolve_algorithm(algorithm: AlgorithmConfig, sampler: SamplerConfig) -> AlgorithmConfig:
    """The ``algorithm`` section checked against its registry entry: its options typed, the
    shared settings it ignores refused (or warned about), the head size matched."""
    spec = algorithm_spec(algorithm.name)
    options = algorithm_options(spec, algorithm)
    check_shared_settings(spec, algorithm)
    check_head(spec, sampler)
    typed = to_dict(options) if options is not None else {}
    return replace(algorithm, options={key: typed[key] for key in algorithm.options})


def algorithm_options(spec: AlgorithmSpec, algorithm: AlgorithmConfig) -> Any:
    """The typed options of ``algorithm`` for ``spec`` (``None`` when it has none)."""
    if spec.options is None:
        if algorithm.options:
            raise ValueError(
                f"algorithm {spec.name!r} takes no algorithm.options; got "
                f"{', '.join(algorithm.options)}"
            )
        return None
    return from_dict(spec.options, algorithm.options, "algorithm.options.")


def check_shared_settings(spec: AlgorithmSpec, algorithm: AlgorithmConfig) -> None:
    """Refuse, or warn about, an inner-loop setting given to a method that does not read it."""
    defaults = AlgorithmConfig()
    for key in SHARED_SETTINGS:
        if key in spec.settings or getattr(algorithm, key) == getattr(defaults, key):
            continue
        users = ", ".join(name for name, s in all_algorithms().items() if key in s.settings)
        if key in _REFUSED:
            if key == "adapt":
                raise ValueError(
                    f"algorithm.adapt does not apply to {spec.name}, which chooses which "
                    f"parameters adapt (or has no inner loop): {_REFUSED[key]}; it applies to "
                    f"{users}"
                )
            raise ValueError(
                f"algorithm.{key} applies to {users}, not {spec.name}; {_REFUSED[key]}"
            )
        warnings.warn(
            f"algorithm.{key} has no effect on {spec.name} (it applies to {users})",
            UserWarning,
            stacklevel=3,
        )


def check_head(spec: AlgorithmSpec, sampler: SamplerConfig) -> None:
    """A network with one output per training way cannot score test episodes of other ways; a
    training loss over query examples needs some."""
    if spec.needs_queries and sampler.queries < 1:
        raise ValueError(
            f"sampler.queries={sampler.queries}: {spec.name}'s training loss scores query "
            "examples; give at least 1 per class"
        )
    if spec.model_output == "logits" and sampler.test_episodes()[0] != sampler.ways:
        raise ValueError(
            f"{spec.name}'s head has one output per training way; set sampler.test_ways equal "
            f"to sampler.ways ({sampler.ways}) or leave it unset"
        )
