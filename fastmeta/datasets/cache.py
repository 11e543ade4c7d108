"""Decoded-image cache: a dataset is decoded once into uint8 arrays saved as one ``.npz`` file.

The cache key holds everything that changes the decoded array: the dataset and its format, the
decoding options (image size, mode, inversion...) and a fingerprint of the source files (name,
size and modification time of each), so replacing a source file or asking for another size
decodes again. Files are written to a temporary name and renamed, so a crash never leaves a
half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .paths import PathLike, cache_root

FORMAT_VERSION = 1


@dataclass
class LabelledImages:
    """A decoded dataset or split: ``images [N, C, H, W]`` uint8, ``labels [N]`` indexing ``names``.

    ``meta`` holds small JSON-serialisable extras (e.g. CIFAR superclasses, skipped files).
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def fingerprint(root: Path, files: Iterable[Path]) -> str:
    """sha256 over (path below ``root``, size, mtime) of ``files``: changes when a file changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        stat = path.stat()
        name = path.relative_to(root).as_posix()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(key: dict[str, Any], cache_dir: PathLike | None = None) -> Path:
    """Where the decoded arrays for ``key`` live (``<cache>/<dataset>-<hash>.npz``)."""
    text = json.dumps({"version": FORMAT_VERSION, **key}, sort_keys=True)
    name = f"{key.get('dataset', 'data')}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.npz"
    return cache_root(cache_dir) / name


def load_or_build(
    key: dict[str, Any],
    build: Callable[[], LabelledImages],
    cache_dir: PathLike | None = None,
) -> LabelledImages:
    """The cached arrays for ``key`` if present and intact, else ``build()`` saved to the cache.

    An unwritable cache folder only costs speed: a warning says which variable to set.
    """
    path = cache_path(key, cache_dir)
    if path.is_file():
        cached = _read(path)
        if cached is not None:
            return cached
        warnings.warn(f"ignoring damaged cache file {path}; decoding again", stacklevel=3)
    started = time.perf_counter()
    name = key.get("dataset", "the images")
    print(f"decoding {name} once into the cache {path} (later loads read it)", file=sys.stderr)
    data = build()
    seconds = time.perf_counter() - started
    print(f"decoded {len(data.images)} images of {name} in {seconds:.1f} s", file=sys.stderr)
    try:
        _write_atomic(path, data, key)
    except OSError as error:
        warnings.warn(
            f"could not write the decoded-data cache {path} ({error}); the next load will decode "
            "again. Set FASTMETA_CACHE (or pass cache_dir) to a writable folder.",
            stacklevel=3,
        )
    return data


def _read(path: Path) -> LabelledImages | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return LabelledImages(
                images=archive["images"],
                labels=archive["labels"],
                names=archive["names"].tolist(),
                meta=json.loads(str(archive["meta"])),
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _write_atomic(path: Path, data: LabelledImages, key: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(
                out,
                images=data.images,
                labels=data.labels.astype(np.int64),
                names=np.array(data.names, dtype=np.str_),
                meta=np.array(json.dumps(data.meta)),
                key=np.array(json.dumps(key, sort_keys=True)),
            )
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
