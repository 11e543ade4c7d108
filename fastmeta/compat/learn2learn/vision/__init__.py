"""learn2learn's ``vision``: benchmarks (``get_tasksets``), models and transforms."""

from __future__ import annotations

from typing import Any

from fastmeta.compat.learn2learn.vision import benchmarks, models, transforms

__all__ = ["benchmarks", "models", "transforms"]


def __getattr__(name: str) -> Any:
    if name == "datasets":
        raise AttributeError(
            "fastmeta.compat.learn2learn.vision has no datasets module: "
            "vision.benchmarks.get_tasksets(name, root=...) loads the benchmarks, and "
            "fastmeta.datasets.load_split(name, split) gives one split's images"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
