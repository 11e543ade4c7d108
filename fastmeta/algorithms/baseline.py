"""The transfer baselines of Chen et al. 2019, "A Closer Look at Few-shot Classification".

Training is ordinary classification: a classifier over *all* training classes sits on the
backbone and both are trained by cross-entropy on every image of the training stream (support
and query images of the sampled episodes, each labelled with its dataset class, taken from
``TaskBatch.classes``). At test time the backbone is frozen and each task gets a new head, fitted
by SGD on the support features alone, which then scores the queries.

Baseline uses linear heads; Baseline++ uses cosine heads, ``scale * cos(feature, w_c)``. The
fine-tuning defaults are those of the authors' code: 100 epochs over the support set in
mini-batches of 4, SGD with learning rate 0.01, momentum 0.9, dampening 0.9, weight decay 0.001.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.algorithms.options import BaselineOptions
from fastmeta.functional.batched import check_strategy
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.models.shapes import embedding_size
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run_config import AlgorithmConfig

Head = Literal["linear", "cosine"]


def cosine_scale(num_classes: int) -> float:
    """The cosine temperature of Chen et al.'s code for a head of ``num_classes`` outputs."""
    return 2.0 if num_classes <= 200 else 10.0


def head_logits(
    features: Tensor, weight: Tensor, bias: Tensor | None, head: Head, scale: float
) -> Tensor:
    """Logits ``[..., n, C]`` of ``features [..., n, D]`` under class weights ``[..., C, D]``.

    ``linear``: ``features @ weight.T + bias``; ``cosine``: ``scale * cos(features, weight_c)``.
    """
    if head == "cosine":
        return scale * F.normalize(features, dim=-1) @ F.normalize(weight, dim=-1).mT
    logits = features @ weight.mT
    return logits if bias is None else logits + bias.unsqueeze(-2)


@dataclass(frozen=True)
class FineTuning:
    """How a test task's new head is fitted on its support features (see the module doc)."""

    epochs: int = 100
    batch: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    dampening: float = 0.9
    weight_decay: float = 0.001
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch < 1 or self.lr <= 0:
            raise ValueError(
                "fine-tuning needs epochs >= 0, batch >= 1 and lr > 0; got "
                f"epochs={self.epochs}, batch={self.batch}, lr={self.lr}"
            )


def initial_heads(
    tasks: int, ways: int, features: Tensor, head: Head, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """New heads for ``tasks`` tasks: weights ``[tasks, ways, D]`` uniform in ``+-1/sqrt(D)``
    (``nn.Linear``'s default) and, for linear heads, a bias ``[tasks, ways]`` likewise."""
    dim = features.shape[-1]
    bound = 1.0 / math.sqrt(dim)

    def uniform(*shape: int) -> Tensor:
        values = torch.rand(*shape, generator=generator, device=features.device)
        return ((2 * values - 1) * bound).to(features.dtype)

    weight = uniform(tasks, ways, dim)
    return weight, uniform(tasks, ways) if head == "linear" else None


def fit_heads(
    features: Tensor,
    labels: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    head: Head,
    scale: float,
    settings: FineTuning,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor | None]:
    """Heads fitted by SGD from ``weight [B, ways, D]`` (and ``bias [B, ways]``) for ``B`` tasks.

    ``features [B, S, D]`` are fixed (no gradient reaches them); ``labels [B, S]``. Each epoch
    visits every task's support set in a random order (from ``generator``), in mini-batches
    of ``settings.batch``. Each step descends the sum over tasks of each task's mean
    mini-batch cross-entropy, so every head follows its own SGD path, as if fitted alone.
    """
    tasks, shots, dim = features.shape
    features = features.detach()
    weight = weight.detach().clone().requires_grad_()
    bias = None if bias is None else bias.detach().clone().requires_grad_()
    optimizer = torch.optim.SGD(
        [weight] if bias is None else [weight, bias],
        lr=settings.lr,
        momentum=settings.momentum,
        dampening=settings.dampening,
        weight_decay=settings.weight_decay,
    )
    with torch.enable_grad():
        for _ in range(settings.epochs):
            order = torch.rand(tasks, shots, generator=generator, device=features.device)
            order = order.argsort(dim=1)
            for start in range(0, shots, settings.batch):
                picked = order[:, start : start + settings.batch]
                x = features.gather(1, picked.unsqueeze(-1).expand(-1, -1, dim))
                logits = head_logits(x, weight, bias, head, scale)
                loss = F.cross_entropy(logits.mT, labels.gather(1, picked), reduction="none")
                optimizer.zero_grad(set_to_none=True)
                total = loss.mean(dim=1).sum()
                total.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
                optimizer.step()
    return weight.detach(), None if bias is None else bias.detach()


class TransferBaseline(MetaLearner):
    """Baseline (``head="linear"``) and Baseline++ (``head="cosine"``) of Chen et al. 2019.

    Args:
        backbone: maps images ``[N, ...]`` to features ``[N, feature_dim]``.
        feature_dim: size of the backbone's features.
        num_classes: classes of the training data (outputs of the training classifier); the
            training batches' ``classes`` must lie in ``0..num_classes-1``.
        head: ``"linear"`` (Baseline) or ``"cosine"`` (Baseline++).
        scale: cosine temperature of the training classifier and of the test heads; ``None``
            follows the authors' code, per head (:func:`cosine_scale`).
        finetune: how each test task's head is fitted.
        strategy, chunk_size: how tasks run when features are extracted at test time.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        head: Head = "linear",
        scale: float | None = None,
        finetune: FineTuning | None = None,
        strategy: str = "auto",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
        if num_classes < 2 or feature_dim < 1:
            raise ValueError(
                f"need num_classes >= 2 and feature_dim >= 1; got num_classes={num_classes}, "
                f"feature_dim={feature_dim}"
            )
        if scale is not None and scale <= 0:
            raise ValueError(f"scale must be positive (or None for the paper's rule), got {scale}")
        check_strategy(strategy)
        self.backbone = backbone
        self.classifier = nn.Linear(feature_dim, num_classes, bias=head == "linear")
        self.head = head
        self.scale = scale
        self.finetune = finetune or FineTuning()
        self.strategy = strategy
        self.chunk_size = chunk_size

    def head_scale(self, num_classes: int) -> float:
        """The cosine temperature of a head with ``num_classes`` outputs."""
        return cosine_scale(num_classes) if self.scale is None else self.scale

    def class_logits(self, features: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` of the training classifier for features ``[N, D]``."""
        c = self.classifier
        return head_logits(features, c.weight, c.bias, self.head, self.head_scale(c.out_features))

    def forward(self, batch: TaskBatch) -> MetaOutput:
        """Cross-entropy of the training classifier on every image of ``batch``.

        ``loss`` is the plain mean over all images; per task, the loss, predictions
        (``[B, S+Q, num_classes]``, support images first) and accuracy cover its images.
        """
        if batch.classes is None:
            raise ValueError(
                "the transfer baselines train on dataset classes: the TaskBatch needs `classes` "
                "(TaskSet batches carry them); hand-built batches must pass classes=[B, ways]"
            )
        tasks, shots, queries = batch.num_tasks, batch.support_y.shape[1], batch.query_y.shape[1]
        targets = torch.cat(
            [batch.classes.gather(1, batch.support_y), batch.classes.gather(1, batch.query_y)], 1
        )
        # the support images of all tasks, then their query images, in one backbone call
        images = torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)])
        logits = self.class_logits(self.backbone(images))
        split, classes = tasks * shots, logits.shape[-1]
        logits = torch.cat(
            [
                logits[:split].view(tasks, shots, classes),
                logits[split:].view(tasks, queries, classes),
            ],
            dim=1,
        )
        losses = F.cross_entropy(logits.mT, targets, reduction="none").mean(dim=1)
        return MetaOutput.from_tasks(losses, logits, targets)

    def evaluate(self, batch: TaskBatch) -> MetaOutput:
        """Fit a new head on each task's frozen support features and score its queries.

        The backbone runs in eval mode without a graph (each task's support and query images in
        one call, so batch-statistics BatchNorm sees the episode) and is left unchanged; only the
        new heads are trained, by first-order SGD on detached features (so not inside
        ``torch.inference_mode``, whose tensors autograd cannot use).
        """
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "the transfer baselines fit a head by gradient descent at test time: call "
                "evaluate() under torch.no_grad() or nothing, not torch.inference_mode()"
            )
        ways = int(batch.support_y.max()) + 1
        features = self.task_features(batch)
        shots = batch.support_y.shape[1]
        scale = self.head_scale(ways)
        generator = torch.Generator(device=features.device).manual_seed(self.finetune.seed)
        weight, bias = initial_heads(batch.num_tasks, ways, features, self.head, generator)
        weight, bias = fit_heads(
            features[:, :shots], batch.support_y, weight, bias, self.head, scale,
            self.finetune, generator,
        )  # fmt: skip
        with torch.no_grad():
            logits = head_logits(features[:, shots:], weight, bias, self.head, scale)
            losses = F.cross_entropy(logits.mT, batch.query_y, reduction="none").mean(dim=1)
        return MetaOutput.from_tasks(losses, logits, batch.query_y)

    def counted_work(self, task: TaskBatch) -> None:
        """Per task, the transfer baselines embed its images (training classifies them all in
        one backbone call; testing fits a head on features)."""
        self.backbone(torch.cat([task.support_x[0], task.query_x[0]]))

    def task_features(self, batch: TaskBatch) -> Tensor:
        """Backbone features ``[B, S+Q, D]`` of each task's support then query images."""
        params, buffers = module_state(self.backbone)
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():

                def embed(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> Tensor:
                    out: Tensor = functional_forward(
                        self.backbone, params, buffers, torch.cat([sx, qx])
                    )
                    return out

                return self.per_task(embed, batch)
        finally:
            self.backbone.train(was_training)


def build_transfer_baseline(
    head: Head,
    settings: AlgorithmConfig,
    options: BaselineOptions,
    model: nn.Module,
    input_shape: tuple[int, ...],
) -> TransferBaseline:
    """Baseline (``head="linear"``) or Baseline++ (``"cosine"``) from a run's ``algorithm``
    section; the feature size is found by running ``model`` on one input."""
    if options.num_classes is None:
        raise ValueError(
            "the transfer baselines need the number of training classes: train through the "
            "trainer (it counts them) or set algorithm.options.num_classes"
        )
    finetune = FineTuning(
        **{f.name: getattr(options, f"finetune_{f.name}") for f in fields(FineTuning)}
    )
    return TransferBaseline(
        model,
        feature_dim=embedding_size(model, input_shape),
        num_classes=options.num_classes,
        head=head,
        scale=options.scale,
        finetune=finetune,
        strategy=settings.strategy,
        chunk_size=settings.chunk_size,
    )


build_baseline = partial(build_transfer_baseline, "linear")
build_baselinepp = partial(build_transfer_baseline, "cosine")
