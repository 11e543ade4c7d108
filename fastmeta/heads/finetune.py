"""Test-time fine-tuning on the support images (the P>M>F recipe's last step).

Per task, a copy of the encoder gets a linear head initialised from the support prototypes
(``W_c = 2 p_c``, ``b_c = -|p_c|^2``: the squared-Euclidean prototype classifier written as a
linear layer), and both are trained by SGD on the (augmented) support images for ``steps``
steps; the queries are then scored by the adapted copy. The encoder runs in eval mode
throughout (BatchNorm keeps its statistics: a five-image support set would give poor ones).
With ``train_encoder=False`` only the head trains: a linear probe on augmented images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastmeta.heads.augment import augment, check_augmentations
from fastmeta.tasks import TaskBatch


@dataclass(frozen=True)
class FineTune:
    """Fine-tuning head (see the module doc): ``steps`` SGD steps of learning rate ``lr``
    (momentum, weight decay) on the support images with ``augmentations`` (``flip``,
    ``crop``), seeded by ``seed``."""

    steps: int = 50
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    train_encoder: bool = True
    augmentations: tuple[str, ...] = ("flip", "crop")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ValueError(f"need steps >= 0 and lr > 0; got steps={self.steps}, lr={self.lr}")
        check_augmentations(self.augmentations)

    def adapt(self, encoder: nn.Module, batch: TaskBatch, ways: int) -> Tensor:
        """Query logits ``[B, Q, ways]``, each task fine-tuned from ``encoder`` on its own."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "fine-tuning trains at test time: call it outside torch.inference_mode()"
            )
        return torch.stack(
            [
                self.task(encoder, batch.support_x[t], batch.support_y[t], batch.query_x[t], ways)
                for t in range(batch.num_tasks)
            ]
        )

    def task(
        self, encoder: nn.Module, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int
    ) -> Tensor:
        """Query logits ``[Q, ways]`` of one task."""
        model = copy.deepcopy(encoder).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(self.train_encoder)
        generator = torch.Generator(device=support_x.device).manual_seed(self.seed)
        with torch.enable_grad():
            head = prototype_linear(model, support_x, support_y, ways)
            trained = list(head.parameters()) + (
                list(model.parameters()) if self.train_encoder else []
            )
            optimizer = torch.optim.SGD(
                trained, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
            for _ in range(self.steps):
                x = augment(support_x, self.augmentations, generator)
                loss = F.cross_entropy(head(model(x)), support_y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
                optimizer.step()
        with torch.no_grad():
            logits: Tensor = head(model(query_x))
        return logits


def prototype_linear(
    model: nn.Module, support_x: Tensor, support_y: Tensor, ways: int
) -> nn.Linear:
    """A linear layer whose logits ``2 p_c . z - |p_c|^2`` rank classes as the squared distance
    to the prototypes ``p_c`` of ``model``'s support features does."""
    with torch.no_grad():
        features = model(support_x)
        one_hot = F.one_hot(support_y, ways).to(features.dtype)
        prototypes = (one_hot.T @ features) / one_hot.sum(0).unsqueeze(1)
    head = nn.Linear(features.shape[1], ways).to(features.device, features.dtype)
    with torch.no_grad():
        head.weight.copy_(2 * prototypes)
        head.bias.copy_(-prototypes.pow(2).sum(1))
    return head
