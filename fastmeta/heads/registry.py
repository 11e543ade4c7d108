"""The heads by name, as ``eval.head`` and :func:`~fastmeta.heads.compare.compare_heads`
name them, with their default settings."""

from __future__ import annotations

from fastmeta.heads.base import FeatureHead, ImageHead
from fastmeta.heads.closed_form import SVM, Ridge
from fastmeta.heads.finetune import FineTune
from fastmeta.heads.linear import LinearProbe
from fastmeta.heads.logistic import LogisticRegression
from fastmeta.heads.prototypes import Prototypes

Head = FeatureHead | ImageHead

HEADS: dict[str, Head] = {
    "prototypes": Prototypes("euclidean"),
    "prototypes-cosine": Prototypes("cosine", scale=10.0),
    "logistic": LogisticRegression(),
    "linear-probe": LinearProbe(),
    "ridge": Ridge(),
    "svm": SVM(),
    "finetune": FineTune(),
    "finetune-head": FineTune(train_encoder=False),
}
"""Each head's one-line role: prototypes (squared Euclidean), prototypes-cosine (scaled
cosine), logistic (L-BFGS to the optimum), linear-probe (Chen et al.'s SGD head), ridge (R2D2),
svm (MetaOptNet), finetune (encoder and prototype-initialised head, augmented support),
finetune-head (the head alone on augmented support images)."""


def head(name: str) -> Head:
    """The head ``name``, or an error listing the names."""
    if name not in HEADS:
        raise ValueError(f"eval.head={name!r} is not a head; choose one of {', '.join(HEADS)}")
    return HEADS[name]


def needs_images(h: Head) -> bool:
    """Whether ``h`` adapts the encoder on images (it cannot run on frozen features)."""
    return isinstance(h, ImageHead)
