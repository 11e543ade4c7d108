"""The algorithms a run can name: ``algorithm.name`` in a config picks one of these.

Each entry says how to build the method (a builder, imported only when it is built, so the
catalogue loads without torch), its own options, what its network must output and what it
can do. Adding a method is its module plus one entry here (and its options in
:mod:`fastmeta.algorithms.options` if it has any); code outside fastmeta adds one with
:func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fastmeta.algorithms import options as opts

if TYPE_CHECKING:
    from torch import nn

    from fastmeta.algorithms.base import MetaLearner
    from fastmeta.run_config import AlgorithmConfig

Builder = Callable[..., "MetaLearner"]
"""``build(settings: AlgorithmConfig, options, model: nn.Module, input_shape) -> MetaLearner``."""

SHARED_SETTINGS = (
    "inner_lr",
    "inner_steps",
    "test_inner_steps",
    "first_order",
    "inner_loss_scale",
    "adapt",
    "checkpoint_inner_steps",
)
"""The inner-loop settings of :class:`~fastmeta.run_config.AlgorithmConfig` that several
methods share; each entry lists those it reads in ``settings``."""


@dataclass(frozen=True)
class AlgorithmSpec:
    """How the trainer builds one algorithm, and what it can do.

    Attributes:
        name: the value of ``algorithm.name``.
        build: ``build(settings, options, model, input_shape) -> MetaLearner``, or its import
            path ``"module:function"``; ``settings`` is the run's ``algorithm`` section,
            ``model`` the network of ``model`` with the output ``model_output`` asks for, and
            ``input_shape`` the shape of one example.
        options: dataclass of the algorithm's own settings, filled from ``algorithm.options``
            (unknown keys and wrong types are refused); ``None`` if it has none.
        model_output: ``"logits"`` (one output per way: test episodes must have the training
            ways), ``"embedding"`` (a feature vector) or ``"feature_map"`` (a spatial map
            ``[N, C, H, W]``, as Relation Networks need).
        description: one line for ``fastmeta algorithms`` and the README.
        settings: which of :data:`SHARED_SETTINGS` it reads; setting another one is refused or
            warned about.
        exports: its :meth:`~fastmeta.algorithms.MetaLearner.task_classifier` works, so a
            trained run can be exported as a fixed classifier.
        classifier: the state-dict name of a classifier over all training classes, whose rows
            are ``options.num_classes`` (filled from the training data when unset).
        schedules: its meta-step changes with training progress (``start_step``), so a
            captured CUDA graph, which freezes it, cannot replay it.
        learned_inner_lr: it meta-learns its inner rates; ``algorithm.inner_lr`` only sets their
            start.
        needs_queries: its training loss scores query examples (all but the transfer
            baselines, which classify every image of an episode).
    """

    name: str
    build: Builder | str
    options: type | None = None
    model_output: Literal["logits", "embedding", "feature_map"] = "logits"
    description: str = ""
    settings: frozenset[str] = frozenset()
    exports: bool = False
    classifier: str | None = None
    schedules: bool = False
    learned_inner_lr: bool = False
    needs_queries: bool = True

    def builder(self) -> Builder:
        """The build function (imported on first use when given as a path)."""
        if not isinstance(self.build, str):
            return self.build
        module, _, function = self.build.partition(":")
        built: Builder = getattr(importlib.import_module(module), function)
        return built


INNER_LOOP = frozenset(("inner_lr", "inner_steps", "test_inner_steps"))
MAML_FAMILY = frozenset(SHARED_SETTINGS)


def _builtin(module: str, **fields: Any) -> AlgorithmSpec:
    name = fields.pop("name")
    return AlgorithmSpec(name, f"fastmeta.algorithms.{module}:build_{module}", **fields)


_BUILTIN = (
    _builtin(
        "maml", name="maml", settings=MAML_FAMILY, exports=True,
        description="MAML and first-order MAML (Finn et al. 2017)",
    ),
    _builtin(
        "metasgd", name="metasgd", settings=MAML_FAMILY, exports=True, learned_inner_lr=True,
        description="Meta-SGD: MAML with learned per-weight inner learning rates (Li et al. 2017)",
    ),
    AlgorithmSpec(
        "anil", "fastmeta.algorithms.anil:build_anil", settings=MAML_FAMILY - {"adapt"},
        exports=True, description="ANIL: MAML adapting only the head (Raghu et al. 2020)",
    ),
    AlgorithmSpec(
        "boil", "fastmeta.algorithms.anil:build_boil", settings=MAML_FAMILY - {"adapt"},
        exports=True, description="BOIL: MAML adapting only the body (Oh et al. 2021)",
    ),
    _builtin(
        "mamlpp", name="mamlpp", options=opts.MAMLPlusPlusOptions,
        settings=MAML_FAMILY - {"checkpoint_inner_steps"}, schedules=True,
        learned_inner_lr=True,
        description="MAML++: multi-step loss, derivative-order annealing, per-step BatchNorm "
        "and learned per-step inner rates (Antoniou et al. 2019)",
    ),
    _builtin(
        "imaml", name="imaml", options=opts.IMAMLOptions,
        settings=INNER_LOOP | {"inner_loss_scale"},
        description="iMAML: proximal inner loop, implicit meta-gradient by conjugate gradient "
        "(Rajeswaran et al. 2019)",
    ),
    _builtin(
        "cavia", name="cavia", options=opts.CAVIAOptions,
        settings=INNER_LOOP | {"first_order", "inner_loss_scale"},
        description="CAVIA: a per-task context vector adapted in the inner loop, the network "
        "shared (Zintgraf et al. 2019)",
    ),
    _builtin(
        "reptile", name="reptile", options=opts.ReptileOptions, settings=INNER_LOOP,
        schedules=True,
        description="Reptile: move towards the task-adapted weights (Nichol et al. 2018)",
    ),
    _builtin(
        "protonet", name="protonet", options=opts.ProtoNetOptions, model_output="embedding",
        exports=True,
        description="Prototypical Networks: nearest class mean in an embedding (Snell et al. 2017)",
    ),
    _builtin(
        "matching", name="matching", options=opts.MatchingOptions, model_output="embedding",
        description="Matching Networks: cosine attention over the support (Vinyals et al. 2016)",
    ),
    _builtin(
        "relation", name="relation", options=opts.RelationOptions, model_output="feature_map",
        description="Relation Networks: learned relation module on feature maps (Sung et al. 2018)",
    ),
    AlgorithmSpec(
        "r2d2", "fastmeta.algorithms.metaoptnet:build_r2d2", options=opts.R2D2Options,
        model_output="embedding",
        description="R2D2: closed-form ridge regression head (Bertinetto et al. 2019)",
    ),
    AlgorithmSpec(
        "metaoptnet-svm", "fastmeta.algorithms.metaoptnet:build_svm", options=opts.SVMOptions,
        model_output="embedding",
        description="MetaOptNet: multi-class SVM head by a differentiable QP (Lee et al. 2019)",
    ),
    AlgorithmSpec(
        "baseline", "fastmeta.algorithms.baseline:build_baseline", options=opts.BaselineOptions,
        model_output="embedding", classifier="classifier.weight", needs_queries=False,
        description="Baseline: linear classifier on all training classes, new linear head "
        "fine-tuned per task (Chen et al. 2019)",
    ),
    AlgorithmSpec(
        "baselinepp", "fastmeta.algorithms.baseline:build_baselinepp",
        options=opts.BaselineOptions, model_output="embedding", classifier="classifier.weight",
        needs_queries=False,
        description="Baseline++: cosine classifier on all training classes, new cosine head "
        "fine-tuned per task (Chen et al. 2019)",
    ),
)  # fmt: skip
_REGISTRY: dict[str, AlgorithmSpec] = {spec.name: spec for spec in _BUILTIN}


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add ``spec``; a second algorithm with the same name is an error."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"an algorithm named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def algorithm_specs() -> dict[str, AlgorithmSpec]:
    """Every registered algorithm, by name, in the catalogue's order."""
    return dict(_REGISTRY)


def algorithm_spec(name: str) -> AlgorithmSpec:
    """The spec of ``name``, or an error listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(
            f"algorithm.name={name!r} is not valid; choose one of {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def build_options(spec: AlgorithmSpec, options: dict[str, Any]) -> Any:
    """``algorithm.options`` checked against ``spec.options`` (``None`` when it has none)."""
    from fastmeta.config import from_dict

    if spec.options is None:
        if options:
            raise ValueError(
                f"algorithm {spec.name!r} takes no algorithm.options; got {', '.join(options)}"
            )
        return None
    return from_dict(spec.options, options, "algorithm.options.")


def build(
    spec: AlgorithmSpec,
    settings: AlgorithmConfig,
    options: Any,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> MetaLearner:
    """``spec``'s algorithm around ``model``, from its own section of the configuration."""
    return spec.builder()(settings, options, model, input_shape)
