"""learn2learn's public API on fastmeta's engine: ``import fastmeta.compat.learn2learn as l2l``.

Written from learn2learn 0.2's documented behaviour (no learn2learn code, and learn2learn is
not needed): ``algorithms`` (MAML, MetaSGD, GBML), ``data`` (meta-datasets, Taskset, task
transforms), ``vision`` (``benchmarks.get_tasksets``, ``models``, ``transforms``), ``nn``,
``optim`` and the module utilities at the top level. The differences from learn2learn, and the
way to fastmeta's batched API, are in docs/MIGRATING.md.
"""

from __future__ import annotations

from typing import Any

from fastmeta.compat.learn2learn import algorithms, data, nn, optim, utils, vision
from fastmeta.compat.learn2learn.utils import (
    accuracy,
    clone_distribution,
    clone_module,
    clone_parameters,
    detach_distribution,
    detach_module,
    magic_box,
    update_module,
)

__all__ = [
    "accuracy",
    "algorithms",
    "clone_distribution",
    "clone_module",
    "clone_parameters",
    "data",
    "detach_distribution",
    "detach_module",
    "magic_box",
    "nn",
    "optim",
    "update_module",
    "utils",
    "vision",
]

_NOT_PROVIDED = {
    "gym": "learn2learn.gym (reinforcement-learning environments)",
    "text": "learn2learn.text (text classification datasets)",
}


def __getattr__(name: str) -> Any:
    if name in _NOT_PROVIDED:
        raise AttributeError(
            f"fastmeta.compat.learn2learn does not provide {_NOT_PROVIDED[name]}; see "
            "docs/MIGRATING.md for what is covered"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
