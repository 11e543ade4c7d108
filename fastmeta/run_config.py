"""The run configuration: every setting of a training run, typed, with its default.

A run is described by one :class:`RunConfig` (YAML in the run directory, presets in
``fastmeta/presets``); ``key=value`` overrides use dotted names such as ``algorithm.inner_lr=0.4``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from fastmeta.config import about, from_dict, setting


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
    """

    name: str = setting("maml", "the method (fastmeta algorithms lists them)")
    inner_lr: float = setting(0.4, "learning rate of the inner (support-set) steps", above=0)
    inner_steps: int = setting(1, "inner steps in training", minimum=0)
    test_inner_steps: int = setting(3, "inner steps at validation and test", minimum=0)
    first_order: bool = setting(False, "drop second derivatives (first-order MAML)")
    inner_loss_scale: float = setting(
        1.0, "factor on the mean support loss (MAML's reference code: ways)", above=0
    )
    adapt: tuple[str, ...] | None = setting(
        None, "parameter names (or prefixes) the inner loop adapts; unset: all"
    )
    strategy: Literal["auto", "vmap", "loop"] = setting(
        "auto", "how the tasks of a batch run: auto picks per device (same numbers)"
    )
    chunk_size: int | None = setting(None, "at most this many tasks in flight at once", minimum=1)
    checkpoint_inner_steps: bool = setting(
        False, "recompute inner-step activations in the backward pass (less memory)"
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata=about("the method's own settings")
    )


@dataclass(frozen=True)
class ModelConfig:
    """The network: ``conv4`` (4-block CNN), ``resnet12``, ``mlp``, or a pretrained backbone,
    ``timm:<architecture>`` (e.g. ``timm:resnet18``) or ``hf:<model id or config.json path>``
    (Hugging Face transformers' vision models: DINOv2, ViT, CLIP's vision tower, ResNet).

    Where the algorithm needs a feature map (Relation Networks), ``conv4`` is Sung et al.'s
    encoder (max-pool after the first two of its four blocks) and ``resnet12`` returns its last
    block's map. A timm or hf backbone takes its input size and normalisation from its own
    configuration and applies them inside the network (images arrive in [0, 1]);
    ``input_size`` overrides the size. ``weights`` loads a safetensors file or a torch state
    dict into the network (refused, with the keys, when they do not fit); ``pretrained`` lets
    timm or transformers fetch the published weights (needs internet); ``freeze`` stops
    training of ``all`` parameters, ``none``, or every parameter up to and including the
    block whose name it gives (``freeze=layer2`` for a ResNet). See docs/BACKBONES.md.
    ``memory_format=channels_last`` stores the convolution weights channels-last, so the
    convolutions (oneDNN on a CPU) run and return channels-last maps: the same numbers, 1.4x
    faster for ProtoNets on a CPU, mixed for MAML (docs/PERFORMANCE.md).
    """

    name: str = setting("conv4", "the network: conv4, resnet12, mlp, timm:<arch> or hf:<id>")
    hidden: int = setting(64, "conv4's filters per block; an mlp's embedding size", minimum=1)
    channels: tuple[int, ...] = setting(
        (64, 160, 320, 640), "resnet12's four block widths", minimum=1
    )
    downsample: Literal["stride", "maxpool"] = setting(
        "stride", "conv4 blocks: stride 2 (MAML's Omniglot net) or 2x2 max-pooling"
    )
    layers: tuple[int, ...] = setting((40, 40), "an mlp's hidden layer widths", minimum=1)
    init: Literal["torch", "maml"] = setting(
        "torch", "an mlp's initialisation: torch's, or MAML's truncated normal"
    )
    drop_rate: float = setting(
        0.0, "DropBlock rate after resnet12's last two blocks", minimum=0, below=1
    )
    drop_block_size: int = setting(5, "DropBlock's block size (MetaOptNet: 5)", minimum=1)
    weights: str | None = setting(
        None, "a .safetensors file or torch state dict to load into the network"
    )
    pretrained: bool = setting(False, "a timm/hf backbone's published weights (needs internet)")
    freeze: str = setting("none", "parameters not trained: none, all, or up to a block's name")
    input_size: int | None = setting(
        None, "a timm/hf backbone's input side in pixels; unset: its own", minimum=1
    )
    memory_format: Literal["contiguous", "channels_last"] = setting(
        "contiguous", "the layout of the convolution weights (channels_last: faster for ProtoNets)"
    )

    def __post_init__(self) -> None:
        from fastmeta.backbones.names import check_model_name

        check_model_name(self.name)
        if not self.freeze:
            raise ValueError("model.freeze must be none, all, or a block's name; got ''")


AugmentPolicy = Literal["none", "flip", "pad-crop", "resized-crop"]
"""The policies of :mod:`fastmeta.data.augment`, the values of ``DataConfig.augment``."""


@dataclass(frozen=True)
class DataConfig:
    """The task source: a registered dataset (``fastmeta data info NAME`` describes one) and its
    own settings, which sit beside the shared ones (``data.split=maml`` for Omniglot).

    ``train_classes="trainval"`` meta-trains on the training and validation classes together,
    the final stage of Snell et al.'s protocol once validation has fixed the training length;
    validation scores are then no longer held out, so such runs set ``train.val_every=0``.
    ``augment`` augments the training episodes only (:mod:`fastmeta.data.augment`; seeded per
    episode, so resume stays exact); the MAML family and ProtoNets train without it.
    ``options`` holds the dataset's own settings (written flat in YAML and overrides:
    ``data.fractions=[0.6,0.2,0.2]`` for a folder), checked against its registry entry when the
    run is built.
    """

    dataset: str = setting("omniglot", "the dataset (fastmeta data info NAME describes one)")
    root: str | None = setting(None, "its folder; unset: $FASTMETA_DATA/<dataset>")
    image_size: int | None = setting(None, "image side in pixels; unset: the dataset's usual")
    train_classes: Literal["train", "trainval"] = setting(
        "train", "classes to meta-train on: train, or train and val together"
    )
    augment: Literal["none", "flip", "pad-crop", "resized-crop"] = setting(
        "none", "augmentation of the training episodes (none, flip, pad-crop, resized-crop)"
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"flatten": True, "help": "the dataset's own settings"}
    )


@dataclass(frozen=True)
class SamplerConfig:
    """N-way K-shot episodes: training ways/shots/queries and the test protocol's.

    ``test_*`` of ``None`` mean "same as training" (:meth:`test_episodes` resolves them).
    """

    ways: int = setting(5, "classes per training episode", minimum=2)
    shots: int = setting(1, "support examples per class", minimum=1)
    queries: int = setting(1, "query examples per class (0: the transfer baselines)", minimum=0)
    meta_batch: int = setting(32, "episodes per meta-step", minimum=1)
    test_ways: int | None = setting(None, "classes per test episode; unset: ways", minimum=2)
    test_shots: int | None = setting(None, "support examples per class at test", minimum=1)
    test_queries: int | None = setting(None, "query examples per class at test", minimum=1)

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

    name: Literal["adam", "sgd"] = setting("adam", "the meta-optimizer")
    lr: float = setting(1e-3, "meta learning rate", above=0)
    weight_decay: float = setting(0.0, "L2 penalty of the meta-optimizer", minimum=0)
    momentum: float = setting(0.0, "sgd's momentum", minimum=0, below=1)
    schedule: Literal["constant", "step", "cosine"] = setting(
        "constant", "learning-rate schedule (cosine spans train.iterations)"
    )
    step_size: int = setting(2000, "the step schedule's period in meta-steps", minimum=1)
    gamma: float = setting(0.5, "the step schedule's factor", above=0)
    grad_clip: float | None = setting(
        None, "clip the meta-gradient's norm to this; unset: no clipping", above=0
    )


@dataclass(frozen=True)
class TrainConfig:
    """Length of training, validation, early stopping and checkpoints.

    ``time_limit_minutes`` stops training once that much training time (summed over resumes,
    evaluation excluded) has passed, even before ``iterations``; schedules still span
    ``iterations``, so set both when a schedule matters. ``target_accuracy`` stops at the first
    validation that reaches it (time to accuracy; a resumed run that reached it trains no
    further). ``precision`` is the arithmetic of the meta-steps (see
    :mod:`fastmeta.train.precision`; ``auto`` is bf16 on a device that computes it natively,
    float32 elsewhere, decided on the machine that trains); evaluation stays in float32.
    ``cuda_graph`` captures the whole meta-step once as a CUDA graph and replays it (CUDA only;
    fixed task shapes; not for methods with a schedule, see :mod:`fastmeta.train.cuda_graph`).
    """

    iterations: int = setting(
        5000, "meta-steps to train (0: none, a frozen backbone scored as it is)", minimum=0
    )
    time_limit_minutes: float | None = setting(
        None, "stop after this much training time; unset: no limit"
    )
    precision: Literal["float32", "tf32", "bf16", "auto"] = setting(
        "float32", "arithmetic of the meta-steps; auto: bf16 where native, else float32"
    )
    cuda_graph: bool = setting(False, "replay the meta-step as a captured CUDA graph")
    val_every: int = setting(500, "validate every this many meta-steps; 0: never", minimum=0)
    val_episodes: int = setting(200, "fixed validation episodes", minimum=1)
    early_stop_patience: int | None = setting(
        None, "stop after this many validations without improvement; unset: never", minimum=1
    )
    target_accuracy: float | None = setting(
        None,
        "stop at the first validation whose mean accuracy reaches this fraction (0.98 for "
        "98 %); unset: never",
        above=0,
    )
    checkpoint_every: int = setting(
        500, "checkpoint every this many meta-steps; 0: only at the end", minimum=0
    )
    keep_checkpoints: int = setting(3, "newest checkpoints kept (best.pt besides)", minimum=1)
    log_every: int = setting(50, "log training metrics every this many steps; 0: never", minimum=0)

    def __post_init__(self) -> None:
        if self.time_limit_minutes is not None and not self.time_limit_minutes > 0:
            raise ValueError(
                "train.time_limit_minutes must be a positive number of minutes, or unset; got "
                f"{self.time_limit_minutes}"
            )
        if self.target_accuracy is not None and self.target_accuracy > 1:
            raise ValueError(
                "train.target_accuracy is a fraction of the queries scored right: write "
                f"{self.target_accuracy / 100:g} for {self.target_accuracy:g} %, or leave it unset"
            )


@dataclass(frozen=True)
class EvalConfig:
    """The test protocol: fixed-seed episodes, batched ``batch_size`` at a time."""

    episodes: int = setting(600, "fixed test episodes", minimum=1)
    seed: int = setting(1_000_003, "seed of the test episodes (validation uses seed + 1)")
    batch_size: int = setting(50, "test episodes per batch", minimum=1)
    inner_steps: tuple[int, ...] = setting(
        (), "extra numbers of test-time inner steps to report, e.g. [1, 5, 10]", minimum=0
    )
    allow_non_finite: bool = setting(
        False, "report a test whose episodes gave non-finite losses instead of failing it"
    )
    heads: tuple[str, ...] = setting(
        (),
        "test-time heads also scored on the same episodes, from the method's embedding: "
        "prototypes, prototypes-cosine, logistic, linear-probe, ridge, svm, finetune, "
        "finetune-head (docs/BACKBONES.md)",
    )

    def __post_init__(self) -> None:
        from fastmeta.heads.names import check_head_names

        check_head_names(self.heads)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; written to ``config.yaml`` in its run directory."""

    name: str = setting("run", "the run's name (default run directory: runs/<name>)")
    reference: str | None = setting(None, "the published result a preset reproduces")
    seed: int = setting(0, "seeds the initial weights and the training episodes")
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "where to train: auto picks CUDA")
    algorithm: AlgorithmConfig = field(
        default_factory=AlgorithmConfig, metadata=about("the method")
    )
    model: ModelConfig = field(default_factory=ModelConfig, metadata=about("the network"))
    data: DataConfig = field(default_factory=DataConfig, metadata=about("the task source"))
    sampler: SamplerConfig = field(default_factory=SamplerConfig, metadata=about("the episodes"))
    optimizer: OptimizerConfig = field(
        default_factory=OptimizerConfig, metadata=about("the meta-optimizer")
    )
    train: TrainConfig = field(
        default_factory=TrainConfig, metadata=about("training, validation, checkpoints")
    )
    eval: EvalConfig = field(default_factory=EvalConfig, metadata=about("the test protocol"))


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
