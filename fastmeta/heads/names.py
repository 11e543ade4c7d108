"""The heads' names, without torch: ``eval.heads`` is checked when a configuration is read."""

from __future__ import annotations

from collections.abc import Sequence

HEAD_NAMES = (
    "prototypes",
    "prototypes-cosine",
    "logistic",
    "linear-probe",
    "ridge",
    "svm",
    "finetune",
    "finetune-head",
)
"""The keys of :data:`fastmeta.heads.registry.HEADS`, in its order."""


def check_head_names(names: Sequence[str]) -> None:
    """Refuse a name that is no head, listing the heads."""
    for name in names:
        if name not in HEAD_NAMES:
            raise ValueError(
                f"eval.heads: {name!r} is not a head; choose from {', '.join(HEAD_NAMES)}"
            )
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"eval.heads names {', '.join(repeated)} twice: give each head once")
