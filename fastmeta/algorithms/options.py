"""Each method's own settings, ``algorithm.options.<name>`` in a run configuration.

One frozen dataclass per method that has settings of its own (the inner-loop settings the
gradient family shares sit in :class:`~fastmeta.run_config.AlgorithmConfig` itself). They are
plain Python, importable without torch, so a configuration can be checked and described before
anything heavy loads; the method modules read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastmeta.config import setting

DEFAULT_FCE_STEPS = 5
"""Processing steps ``K`` of Matching Networks' query attention LSTM when none are given. The
paper does not state its ``K``; a fixed number (rather than one per support example) keeps ``f``
the same function when the test episodes have another number of shots."""


@dataclass(frozen=True)
class MAMLPlusPlusOptions:
    """``algorithm.options`` of MAML++ (see :class:`~fastmeta.algorithms.MAMLPlusPlus`)."""

    learn_lr: bool = setting(True, "meta-learn per-layer per-step inner rates (LSLR)")
    per_step_batchnorm: bool = setting(True, "one BatchNorm weight, bias and statistics per step")
    batchnorm_statistics: Literal["batch", "running"] = setting(
        "batch", "what evaluation normalises with: each episode's or the running statistics"
    )
    multi_step_fraction: float = setting(
        0.1, "fraction of training over which the multi-step loss is annealed", minimum=0
    )
    first_order_fraction: float = setting(
        0.5, "fraction of training with first-order meta-gradients", minimum=0
    )


@dataclass(frozen=True)
class IMAMLOptions:
    """``algorithm.options`` of iMAML: ``regularization`` is the proximal ``lambda``, ``cg_steps``
    the conjugate-gradient iterations of the implicit meta-gradient.

    ``proximal_steps``, ``cg_damping``, ``hessian_damping`` and ``test_regularization`` choose
    between the paper's equations (the defaults) and its authors' Omniglot code (plain inner
    steps then one proximal step, the system ``2 I + H / (lambda + 10)``, plain steps at test).
    """

    regularization: float = setting(2.0, "the proximal strength lambda", above=0)
    cg_steps: int = setting(5, "conjugate-gradient iterations of the implicit gradient", minimum=1)
    proximal_steps: bool = setting(
        True, "every inner step pulls towards theta; false: one pull after plain steps"
    )
    cg_damping: float = setting(0.0, "added to the identity of the CG system", minimum=0)
    hessian_damping: float = setting(0.0, "added to lambda where it divides H", minimum=0)
    test_regularization: float | None = setting(
        None,
        "lambda when adapting at test time (0: plain steps); unset: regularization",
        minimum=0,
    )


@dataclass(frozen=True)
class CAVIAOptions:
    """``algorithm.options`` of CAVIA.

    ``film_layer`` is the sub-module whose output the context modulates; ``None`` picks the
    BatchNorm of the third conv block of ``conv4`` (as CAVIA's image network) or the first
    layer of an ``mlp``, where the context acts as extra inputs (concatenation).
    """

    context_dim: int = setting(100, "length of the per-task context vector", minimum=1)
    film_layer: str | None = setting(None, "the sub-module the context modulates; unset: auto")


@dataclass(frozen=True)
class ReptileOptions:
    """Reptile's own settings.

    ``outer_lr`` is the Reptile step ``eps`` at the start, annealed linearly to ``final_outer_lr``
    over ``train.iterations``; with ``optimizer: {name: sgd, lr: 1.0}`` the update is exact.
    ``inner_optimizer`` is the inner update (Adam with ``adam_betas``, or plain SGD);
    ``inner_batch`` is the support examples per inner step (unset: the whole support set).
    ``carry_state`` carries the inner optimizer's state (Adam's moments) from task to task.
    """

    outer_lr: float = setting(1.0, "the Reptile step epsilon at the start", minimum=0)
    final_outer_lr: float = setting(0.0, "epsilon reached at the end (linear)", minimum=0)
    inner_optimizer: Literal["sgd", "adam"] = setting("adam", "the inner update rule")
    adam_betas: tuple[float, float] = setting(
        (0.0, 0.999), "inner Adam's betas (the paper: beta1 = 0)", minimum=0, below=1
    )
    inner_batch: int | None = setting(
        None, "support examples per inner step; unset: all", minimum=1
    )
    carry_state: bool = setting(
        False, "inner optimizer state carries across tasks (the authors' code); false: fresh"
    )


@dataclass(frozen=True)
class ProtoNetOptions:
    """``algorithm.options`` of ``protonet``: the distance to the class means and a factor on
    the logits (1 in the paper's Euclidean setting), fixed or meta-learned."""

    distance: Literal["squared_euclidean", "cosine"] = setting(
        "squared_euclidean", "distance of a query to the class means"
    )
    scale: float = setting(1.0, "factor on the logits (a temperature)", above=0)
    learn_scale: bool = setting(
        False, "meta-learn the factor from scale on (Meta-Baseline: cosine, scale 10)"
    )


@dataclass(frozen=True)
class MatchingOptions:
    """``algorithm.options`` of ``matching``: the factor on cosine similarities (1 = paper),
    and whether to add full context embeddings with ``fce_steps`` query attention steps."""

    scale: float = setting(1.0, "factor on the cosine similarities", above=0)
    fce: bool = setting(False, "add full context embeddings (the paper's Appendix A)")
    fce_steps: int = setting(DEFAULT_FCE_STEPS, "the query attention LSTM's steps (>= 1)")


@dataclass(frozen=True)
class RelationOptions:
    """``algorithm.options`` of ``relation``: the loss, and the relation module's widths."""

    loss: Literal["mse", "cross_entropy"] = setting("mse", "the training loss (the paper: mse)")
    hidden: int = setting(64, "the relation module's filters", minimum=1)
    fc_hidden: int = setting(8, "its hidden fully connected width", minimum=1)


@dataclass(frozen=True)
class R2D2Options:
    """``algorithm.options`` of ``r2d2``: the ridge penalty (learned unless ``learn_ridge`` is
    false) and the initial score scale."""

    ridge: float = setting(50.0, "the ridge penalty lambda (its start, when learned)", above=0)
    learn_ridge: bool = setting(True, "meta-learn the penalty")
    scale: float = setting(10.0, "the score scale's start (it is learned)")


@dataclass(frozen=True)
class SVMOptions:
    """``algorithm.options`` of ``metaoptnet-svm``: slack weight ``C``, initial score scale, and
    the QP solver's tolerance and iteration cap."""

    C: float = setting(0.1, "the SVM's slack weight", above=0)
    scale: float = setting(10.0, "the score scale's start (it is learned)")
    tol: float = setting(1e-8, "the QP solver's tolerance", above=0)
    max_iter: int = setting(50, "the QP solver's iteration cap", minimum=1)


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

    num_classes: int | None = setting(
        None, "the training classifier's outputs; unset: the data's classes", minimum=2
    )
    scale: float | None = setting(None, "cosine temperature; unset: the authors' rule", above=0)
    finetune_epochs: int = setting(100, "epochs of each test task's new head", minimum=0)
    finetune_batch: int = setting(4, "its mini-batch size", minimum=1)
    finetune_lr: float = setting(0.01, "its SGD learning rate", above=0)
    finetune_momentum: float = setting(0.9, "its SGD momentum", minimum=0, below=1)
    finetune_dampening: float = setting(0.9, "its SGD dampening", minimum=0, below=1)
    finetune_weight_decay: float = setting(0.001, "its SGD weight decay", minimum=0)
    finetune_seed: int = setting(0, "seeds the new heads and their mini-batches")
