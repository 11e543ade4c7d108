"""Where data and decoded caches live: ``$FASTMETA_DATA/<name>`` and ``$FASTMETA_CACHE``.

The data root may be read-only (a shared mount); nothing is ever written there except by an
explicit download. Decoded arrays go to the cache folder instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SplitError

PathLike = str | os.PathLike[str]
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"validation": "val", "valid": "val", "training": "train", "testing": "test"}


def data_root(name: str, root: PathLike | None = None) -> Path:
    """The folder holding dataset ``name``: ``root`` if given, else ``$FASTMETA_DATA/<name>``.

    Without ``$FASTMETA_DATA`` the default is ``~/.local/share/fastmeta/<name>``.
    """
    if root is not None:
        return Path(root).expanduser()
    base = os.environ.get("FASTMETA_DATA")
    if base:
        return Path(base).expanduser() / name
    return Path.home() / ".local" / "share" / "fastmeta" / name


def cache_root(cache_dir: PathLike | None = None) -> Path:
    """Decoded-array folder: ``cache_dir``, else ``$FASTMETA_CACHE``, else ``~/.cache/fastmeta``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FASTMETA_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fastmeta"


def normalize_split(split: str, allowed: tuple[str, ...] = SPLITS) -> str:
    """``split`` as one of ``allowed`` (accepting "validation"/"valid"), or a clear error."""
    name = _SPLIT_ALIASES.get(split.lower(), split.lower())
    if name not in allowed:
        raise SplitError(f"unknown split {split!r}: choose one of {', '.join(allowed)}")
    return name
