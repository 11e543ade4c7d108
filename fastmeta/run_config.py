"""The run configuration: every setting of a training run, typed, with its default.

A run is described by one :class:`RunConfig` (YAML in the run directory, presets in
``fastmeta/presets``); ``key=value`` overrides use dotted names such as ``algorithm.inner_lr=0.4``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class AlgorithmConfig:
    """Which meta-learner and its inner loop.

    ``name`` is a registered algorithm (``fastmeta algorithms`` lists them); ``options`` holds the
    settings of that algorithm alone (e.g. ``algorithm.options.outer_lr=1.0`` for Reptile),
    checked against its options when the run is built.

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
    distance: Literal["squared_euclidean", "cosine"] = "squared_euclidean"
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
    """The task source. ``sine`` needs no files; image datasets are read from ``root``
    (default ``$FASTMETA_DATA/<dataset>``).

    ``train_classes="trainval"`` meta-trains on the training and validation classes together,
    the final stage of Snell et al.'s protocol once validation has fixed the training length;
    validation scores are then no longer held out, so such runs set ``train.val_every=0``.

    ``dataset="folder"`` reads the user's images under ``root`` (one sub-folder per class; see
    docs/OWN_DATA.md): its classes are split by ``fractions`` in an order fixed by
    ``split_seed``; ``channels`` of ``None`` means grey (1) when every image is grey, else 3;
    ``normalize="auto"`` standardises each channel by the training images' mean and std for a
    folder and leaves benchmarks as they are. ``split_file`` is the ``split.yaml`` that
    ``fastmeta train --data`` writes into the run directory, so the split is reused.
    """

    dataset: Literal["sine", "omniglot", "folder"] = "omniglot"
    root: str | None = None
    split: Literal["vinyals", "maml"] = "vinyals"
    image_size: int = 28
    train_classes: Literal["train", "trainval"] = "train"
    channels: Literal[1, 3] | None = None
    normalize: Literal["auto", "none", "dataset"] = "auto"
    fractions: tuple[float, float, float] = (0.64, 0.16, 0.20)
    split_seed: int = 0
    split_file: str | None = None


@dataclass(frozen=True)
class SamplerConfig:
    """N-way K-shot episodes: training ways/shots/queries and the test protocol's.

    ``test_*`` of ``None`` mean "same as training". ``queries`` is per class.
    """

    ways: int = 5
    shots: int = 1
    queries: int = 1
    meta_batch: int = 32
    test_ways: int | None = None
    test_shots: int | None = None
    test_queries: int | None = None


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
    """

    iterations: int = 5000
    time_limit_minutes: float | None = None
    precision: Literal["float32", "tf32", "bf16"] = "float32"
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
