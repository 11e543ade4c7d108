"""Turn a decoded dataset and a list of classes into an :class:`ImageStore` for one split.

A class is a (base name, quarter turns) pair, so Omniglot's rotated characters and plain classes
share one path. Names absent from the data raise an error that lists them; a split store holds
only the images of its own classes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fastmeta.data.store import ImageStore

from .cache import LabelledImages
from .errors import MissingDataError, SplitError


def read_list(path: Path, fix: str) -> list[str]:
    """Non-empty, stripped lines of a split list; a missing list raises naming ``fix``."""
    if not path.is_file():
        raise MissingDataError(f"split list {path} is missing. {fix}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def hashed_order(names: Sequence[str], seed: int) -> list[str]:
    """``names`` in a pseudo-random order fixed by ``seed`` (sha256 of seed and name).

    Unlike a seeded shuffle, the order depends on nothing but the names and the seed: not on
    the library version, the platform, or the order the files were listed in.
    """
    return sorted(names, key=lambda n: hashlib.sha256(f"{seed}\0{n}".encode()).hexdigest())


def build_store(
    data: LabelledImages, classes: Sequence[tuple[str, int]], where: str, fix: str
) -> ImageStore:
    """An :class:`ImageStore` whose classes are exactly ``classes`` ((base name, turns) pairs).

    Only the images of the named bases are kept; base labels are renumbered in order of first
    appearance in ``classes``. ``where`` names the split list in errors, ``fix`` says what to do.
    """
    if not classes:
        raise SplitError(f"{where} names no classes. {fix}")
    duplicates = sorted(c for c, n in Counter(classes).items() if n > 1)
    if duplicates:
        raise SplitError(f"{where} lists classes more than once: {duplicates[:5]}. {fix}")
    index = {name: i for i, name in enumerate(data.names)}
    absent = sorted({name for name, _ in classes if name not in index})
    if absent:
        shown = ", ".join(absent[:5]) + (" ..." if len(absent) > 5 else "")
        raise SplitError(
            f"{where} names {len(absent)} class(es) absent from the data: {shown}. {fix}"
        )
    bases = list(dict.fromkeys(name for name, _ in classes))
    old_ids = np.array([index[name] for name in bases], dtype=np.int64)
    remap = np.full(len(data.names), -1, dtype=np.int64)
    remap[old_ids] = np.arange(len(bases))
    new_labels = remap[data.labels]
    keep = new_labels >= 0
    images = data.images if keep.all() else data.images[keep]
    empty = [
        bases[i] for i in np.flatnonzero(np.bincount(new_labels[keep], minlength=len(bases)) == 0)
    ]
    if empty:
        raise SplitError(f"{where}: class(es) without images: {', '.join(empty[:5])}. {fix}")
    new_index = {name: i for i, name in enumerate(bases)}
    return ImageStore(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(new_labels[keep]),
        bases,
        torch.tensor([new_index[name] for name, _ in classes], dtype=torch.long),
        torch.tensor([turns for _, turns in classes], dtype=torch.long),
    )
