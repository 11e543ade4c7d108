"""The run configuration: every setting of a training run, typed, with its default.

A run is described by one :class:`RunConfig` (YAML in the run directory, presets in
``fastmeta/presets``); ``key=value`` overrides use dotted names such as ``algorithm.inner_lr=0.4``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from fastmeta.config import from_dict


@dataclass(frozen=True)
class AlgorithmConfig:
    """Which meta-learner, the inner loop the gradient family shares, and how tasks run.

    ``name`` is a registered algorithm (``fastmeta algorithms`` lists them); ``options`` holds the
    settings of that algorithm alone (e.g. ``algorithm.options.outer_lr=1.0`` for Reptile,
    ``algorithm.options.distance=cosine`` for ProtoNets), checked against its options when the
    run is built. The inner-loop settings apply to the methods that have one; each method's
    registry entry says which it reads, and setting one it ignores is refused or warned about.

    ``inner_loss_scale`` multiplies the mean inner (support) loss: MAML's reference code sums the
    cross-entropy over the N*K support examples and divides by K, i.e. ``N`` times the mean, so
    its inner lr 0.4 for 5-way Omniglot is ``inner_lr=0.4, inner_loss_scale=5``.

    ``checkpoint_inner_steps`` recomputes each inner step's activations in the backward pass
    instead of keeping them (MAML, Meta-SGD, ANIL, BOIL; tasks then run one at a time).
    """

    name: str = "maml"
    inner_lr: float = 0.4
    inner_steps: int = 1
    test_inner_steps: int = 3
    first_order: bool = False
    inner_loss_scale: float = 1.0
    adapt: tuple[str, ...] | None = None
    strategy: Literal["auto", "vmap", "loop"] = "auto"
    chunk_size: int | None = None
    checkpoint_inner_steps: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """The network: ``conv4`` (4-block CNN), ``resnet12`` or ``mlp``.

    ``channels`` are ResNet-12's four block widths. Where the algorithm needs a feature map
    (Relation Networks), ``conv4`` is Sung et al.'s encoder (max-pool after the first two of its
    four blocks) and ``resnet12`` returns its last block's map. ``drop_rate`` and
    ``drop_block_size`` add DropBlock to ResNet-12 (MetaOptNet: block size 5).
    """

    name: Literal["conv4", "resnet12", "mlp"] = "conv4"
    hidden: int = 64
    channels: tuple[int, ...] = (64, 160, 320, 640)
    downsample: Literal["stride", "maxpool"] = "stride"
    layers: tuple[int, ...] = (40, 40)
    init: Literal["torch", "maml"] = "torch"
    drop_rate: float = 0.0
    drop_block_size: int = 5


@dataclass(frozen=True)
class DataConfig:
    """The task source: a registered dataset (``fastmeta data info NAME`` describes one) and its
    own settings, which sit beside the shared ones (``data.split=maml`` for Omniglot).

    ``root`` defaults to ``$FASTMETA_DATA/<dataset>``; ``image_size`` to the dataset's usual
    size (``None``). ``train_classes="trainval"`` meta-trains on the training and validation
    classes together, the final stage of Snell et al.'s protocol once validation has fixed the
    training length; validation scores are then no longer held out, so such runs set
    ``train.val_every=0``. ``options`` holds the dataset's own settings (written flat in YAML
    and overrides: ``data.fractions=[0.6,0.2,0.2]`` for a folder), checked against its registry
    entry when the run is built.
    """

    dataset: str = "omniglot"
    root: str | None = None
    image_size: int | None = None
    train_classes: Literal["train", "trainval"] = "train"
    options: dict[str, Any] = field(default_factory=dict, metadata={"flatten": True})


@dataclass(frozen=True)
class SamplerConfig:
    """N-way K-shot episodes: training ways/shots/queries and the test protocol's.

    ``test_*`` of ``None`` mean "same as training" (:meth:`test_episodes` resolves them).
    ``queries`` is per class.
    """

    ways: int = 5
    shots: int = 1
    queries: int = 1
    meta_batch: int = 32
    test_ways: int | None = None
    test_shots: int | None = None
    test_queries: int | None = None

    def test_episodes(self) -> tuple[int, int, int]:
        """``(ways, shots, queries)`` of the validation and test episodes."""
        return (
            self.ways if self.test_ways is None else self.test_ways,
            self.shots if self.test_shots is None else self.test_shots,
            self.queries if self.test_queries is None else self.test_queries,
        )


@dataclass(frozen=True)
class OptimizerConfig:
    """Meta-optimizer, learning-rate schedule and gradient clipping."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = 2000
    gamma: float = 0.5
    grad_clip: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Length of training, validation, early stopping and checkpoints.

    ``time_limit_minutes`` stops training once that much training time (summed over resumes,
    evaluation excluded) has passed, even before ``iterations``; schedules still span
    ``iterations``, so set both when a schedule matters. ``precision`` is the arithmetic of the
    meta-steps (see :mod:`fastmeta.train.precision`); evaluation stays in float32.
    ``cuda_graph`` captures the whole meta-step once as a CUDA graph and replays it (CUDA only;
    fixed task shapes; not for methods with a schedule, see :mod:`fastmeta.train.cuda_graph`).
    """

    iterations: int = 5000
    time_limit_minutes: float | None = None
    precision: Literal["float32", "tf32", "bf16"] = "float32"
    cuda_graph: bool = False
    val_every: int = 500
    val_episodes: int = 200
    early_stop_patience: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.time_limit_minutes is not None and not self.time_limit_minutes > 0:
            raise ValueError(
                "train.time_limit_minutes must be a positive number of minutes, or unset; got "
                f"{self.time_limit_minutes}"
            )


@dataclass(frozen=True)
class EvalConfig:
    """The test protocol: fixed-seed episodes, batched ``batch_size`` at a time.

    ``inner_steps`` lists extra numbers of test-time inner steps to report (MAML family), e.g.
    ``[1, 5, 10]`` for the sine-regression table; the headline uses ``test_inner_steps``.
    """

    episodes: int = 600
    seed: int = 1_000_003
    batch_size: int = 50
    inner_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; written to ``config.yaml`` in its run directory.

    ``reference`` is free text naming the published result a preset reproduces.
    """

    name: str = "run"
    reference: str | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# fastmeta 0.1 wrote these settings for every dataset and algorithm; each applied to the
# datasets (or algorithm) named. Elsewhere, at the value it wrote, the setting had no effect and
# is dropped when such a file is read; any other value is kept, to be refused with its reason.
_LEGACY_DATA: dict[str, tuple[Any, tuple[str, ...]]] = {
    "split": ("vinyals", ("omniglot",)),
    "channels": (None, ("folder",)),
    "normalize": ("auto", ("folder",)),
    "fractions": ([0.64, 0.16, 0.2], ("folder",)),
    "split_seed": (0, ("folder",)),
    "split_file": (None, ("folder",)),
}
_IMAGE_SIZE_0_1 = 28


def upgrade_legacy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration mapping as written by fastmeta 0.1 in the current layout (``distance``
    moved into ProtoNets' ``algorithm.options``; dataset settings kept only where they apply).
    A mapping in the current layout comes back unchanged."""
    upgraded = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    algorithm = upgraded.get("algorithm")
    if isinstance(algorithm, dict) and "distance" in algorithm:
        distance = algorithm.pop("distance")
        if algorithm.get("name") == "protonet":
            algorithm["options"] = {"distance": distance, **(algorithm.get("options") or {})}
        elif distance != "squared_euclidean":
            algorithm["distance"] = distance  # refused later, with its new place named
    section = upgraded.get("data")
    if isinstance(section, dict):
        dataset = section.get("dataset", DataConfig.dataset)
        for key, (written, users) in _LEGACY_DATA.items():
            if key in section and dataset not in users and _same(section[key], written):
                del section[key]
        if dataset == "sine" and section.get("image_size") == _IMAGE_SIZE_0_1:
            del section["image_size"]
    return upgraded


def _same(value: Any, written: Any) -> bool:
    if isinstance(value, list | tuple) and isinstance(written, list | tuple):
        return [float(v) for v in value] == [float(w) for w in written]
    return bool(value == written)


def read_run_config(text: str, where: str = "the configuration") -> RunConfig:
    """The :class:`RunConfig` of YAML ``text`` (a preset, a user's file or a run's
    ``config.yaml``, also one written by fastmeta 0.1); errors name ``where``."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{where}{line} is not valid YAML: {problem}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of settings, got {data!r}")
    return from_dict(RunConfig, upgrade_legacy(data))
