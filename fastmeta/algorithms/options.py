"""Each method's own settings, ``algorithm.options.<name>`` in a run configuration.

One frozen dataclass per method that has settings of its own (the inner-loop settings the
gradient family shares sit in :class:`~fastmeta.run_config.AlgorithmConfig` itself). They are
plain Python, importable without torch, so a configuration can be checked and described before
anything heavy loads; the method modules read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_FCE_STEPS = 5
"""Processing steps ``K`` of Matching Networks' query attention LSTM when none are given. The
paper does not state its ``K``; a fixed number (rather than one per support example) keeps ``f``
the same function when the test episodes have another number of shots."""


@dataclass(frozen=True)
class MAMLPlusPlusOptions:
    """``algorithm.options`` of MAML++ (see :class:`~fastmeta.algorithms.MAMLPlusPlus`)."""

    learn_lr: bool = True
    per_step_batchnorm: bool = True
    batchnorm_statistics: Literal["batch", "running"] = "batch"
    multi_step_fraction: float = 0.1
    first_order_fraction: float = 0.5


@dataclass(frozen=True)
class IMAMLOptions:
    """``algorithm.options`` of iMAML: ``regularization`` is the proximal ``lambda``, ``cg_steps``
    the conjugate-gradient iterations of the implicit meta-gradient."""

    regularization: float = 2.0
    cg_steps: int = 5


@dataclass(frozen=True)
class CAVIAOptions:
    """``algorithm.options`` of CAVIA.

    ``film_layer`` is the sub-module whose output the context modulates; ``None`` picks the
    BatchNorm of the third conv block of ``conv4`` (as CAVIA's image network) or the first
    layer of an ``mlp``, where the context acts as extra inputs (concatenation).
    """

    context_dim: int = 100
    film_layer: str | None = None


@dataclass(frozen=True)
class ReptileOptions:
    """Reptile's own settings.

    ``outer_lr`` is the Reptile step ``eps`` at the start, annealed linearly to ``final_outer_lr``
    over ``train.iterations``; with ``optimizer: {name: sgd, lr: 1.0}`` the update is exact.
    ``inner_optimizer`` is the inner update (Adam with ``adam_betas``, or plain SGD);
    ``inner_batch`` is the support examples per inner step (unset: the whole support set).
    """

    outer_lr: float = 1.0
    final_outer_lr: float = 0.0
    inner_optimizer: Literal["sgd", "adam"] = "adam"
    adam_betas: tuple[float, float] = (0.0, 0.999)
    inner_batch: int | None = None


@dataclass(frozen=True)
class ProtoNetOptions:
    """``algorithm.options`` of ``protonet``: the distance to the class means and a factor on
    the logits (1 in the paper's Euclidean setting)."""

    distance: Literal["squared_euclidean", "cosine"] = "squared_euclidean"
    scale: float = 1.0


@dataclass(frozen=True)
class MatchingOptions:
    """``algorithm.options`` of ``matching``: the factor on cosine similarities (1 = paper),
    and whether to add full context embeddings with ``fce_steps`` query attention steps."""

    scale: float = 1.0
    fce: bool = False
    fce_steps: int = DEFAULT_FCE_STEPS


@dataclass(frozen=True)
class RelationOptions:
    """``algorithm.options`` of ``relation``: the loss, and the relation module's widths."""

    loss: Literal["mse", "cross_entropy"] = "mse"
    hidden: int = 64
    fc_hidden: int = 8


@dataclass(frozen=True)
class R2D2Options:
    """``algorithm.options`` of ``r2d2``: the ridge penalty (learned unless ``learn_ridge`` is
    false) and the initial score scale."""

    ridge: float = 50.0
    learn_ridge: bool = True
    scale: float = 10.0


@dataclass(frozen=True)
class SVMOptions:
    """``algorithm.options`` of ``metaoptnet-svm``: slack weight ``C``, initial score scale, and
    the QP solver's tolerance and iteration cap."""

    C: float = 0.1
    scale: float = 10.0
    tol: float = 1e-8
    max_iter: int = 50


@dataclass(frozen=True)
class BaselineOptions:
    """``algorithm.options`` of ``baseline`` and ``baselinepp``.

    Attributes:
        num_classes: outputs of the training classifier; unset, the trainer fills in the number
            of classes of the training data.
        scale: cosine-head temperature (Baseline++ only); unset, the rule of the authors' code:
            2 for heads of at most 200 classes, else 10 (so 10 for Omniglot's thousands of
            training classes and 2 for a test task's head).
        finetune_epochs, finetune_batch, finetune_lr, finetune_momentum, finetune_dampening,
        finetune_weight_decay: the SGD fit of each test task's new head.
        finetune_seed: seeds the new heads' initialisation and mini-batch order.
    """

    num_classes: int | None = None
    scale: float | None = None
    finetune_epochs: int = 100
    finetune_batch: int = 4
    finetune_lr: float = 0.01
    finetune_momentum: float = 0.9
    finetune_dampening: float = 0.9
    finetune_weight_decay: float = 0.001
    finetune_seed: int = 0
