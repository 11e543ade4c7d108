"""A user's own images, one sub-folder per class, as few-shot stores.

``root/<class name>/<image files>`` in any format Pillow reads and any size or mode; every image
is converted to the chosen mode and made square by ``resize``: its centre square kept
(``"crop"``, the default), fitted whole with black borders (``"pad"``) or squashed
(``"squash"``, aspect ratio not kept), then resized (LANCZOS). The first decode of a folder
says what it decodes and how long it took (with a bar on a terminal); later reads come from the
cache.
Files that cannot be used are skipped and reported with the reason (not an image, corrupt,
outside any class folder), as are class folders left without images. The classes can be split
into train / val / test by fractions, in a seeded order that depends only on the class names.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fastmeta.data.store import ImageStore

from .cache import LabelledImages, fingerprint, load_or_build
from .errors import MissingDataError, SplitError
from .imaging import DecodeSpec, decode_images
from .paths import PathLike, normalize_split
from .splits import build_store, hashed_order

FRACTIONS = (0.64, 0.16, 0.20)
RESIZE = "crop"


@dataclass(frozen=True)
class FolderReport:
    """What was left out of a folder dataset: ``skipped`` (file, reason) and empty classes."""

    skipped: list[tuple[str, str]]
    empty_classes: list[str]

    def summary(self) -> str:
        """One readable paragraph, empty when nothing was left out."""
        lines = [f"skipped {path}: {reason}" for path, reason in self.skipped]
        lines += [f"class folder {name}/ has no usable image" for name in self.empty_classes]
        return "\n".join(lines)


def read_image_folder(
    root: PathLike,
    image_size: int = 84,
    mode: str = "RGB",
    *,
    resize: str = RESIZE,
    cache_dir: PathLike | None = None,
    workers: int | None = None,
) -> tuple[LabelledImages, FolderReport]:
    """Decode every image under ``root/<class>/`` once (cached by files, size, mode and
    ``resize``); returns data and report.

    Hidden files and folders (names starting with ".") are ignored. Raises if no class folder
    holds a usable image.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise MissingDataError(
            f"{folder} is not a folder; give the folder that holds one sub-folder per class."
        )
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))
    files = [p for p in folder.rglob("*") if p.is_file() and not _hidden_path(p, folder)]
    key = {
        "dataset": "folder",
        "size": image_size,
        "mode": mode,
        "resize": resize,
        "files": fingerprint(folder, files),
    }
    spec = DecodeSpec(image_size, mode, resize=resize)  # checked before any decoding

    def build() -> LabelledImages:
        loose = [p for p in files if p.parent == folder]
        inside = sorted(p for p in files if p.parent != folder)
        items = ((p.relative_to(folder).as_posix(), p.read_bytes()) for p in inside)
        decoded = decode_images(items, spec, len(inside), workers)
        skipped = [(p.name, "not inside a class folder") for p in loose] + decoded.failures
        labels_of = [name.split("/")[0] for name in decoded.names]
        used = sorted(set(labels_of))
        index = {name: i for i, name in enumerate(used)}
        labels = np.array([index[c] for c in labels_of], dtype=np.int64)
        meta = {"skipped": skipped, "empty": [c for c in classes if c not in index]}
        return LabelledImages(decoded.images, labels, used, meta)

    data = load_or_build(key, build, cache_dir)
    report = FolderReport([tuple(s) for s in data.meta["skipped"]], data.meta["empty"])
    if not data.names:
        detail = f"\n{report.summary()}" if report.summary() else ""
        raise MissingDataError(
            f"no class folder in {folder} holds a usable image: expected "
            f"{folder}/<class name>/<image files>.{detail}"
        )
    return data, report


GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def is_grey_folder(root: PathLike) -> bool:
    """Whether every readable image under ``root/<class>/`` is grey (reads file headers only).

    Used to choose one channel for a grey dataset and three as soon as one image has colour.
    """
    folder = Path(root).expanduser()
    for path in folder.rglob("*"):
        if not path.is_file() or path.parent == folder or _hidden_path(path, folder):
            continue
        try:
            with Image.open(path) as image:
                if image.mode not in GREY_MODES:
                    return False
        except (OSError, SyntaxError, ValueError):
            continue  # unreadable files are reported by read_image_folder
    return True


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _hidden_path(path: Path, root: Path) -> bool:
    return any(_hidden(part) for part in path.relative_to(root).parts)


def load_image_folder(
    root: PathLike,
    split: str = "all",
    image_size: int = 84,
    *,
    mode: str = "RGB",
    fractions: tuple[float, float, float] = FRACTIONS,
    seed: int = 0,
    resize: str = RESIZE,
    cache_dir: PathLike | None = None,
    workers: int | None = None,
) -> ImageStore:
    """The classes of ``split`` ("all", or "train"/"val"/"test" by ``fractions``) as a store.

    Skipped files and empty class folders are reported in a warning (see
    :func:`read_image_folder` for the full report).
    """
    data, report = read_image_folder(
        root, image_size, mode, resize=resize, cache_dir=cache_dir, workers=workers
    )
    if report.summary():
        warnings.warn(f"{root}: some files were left out:\n{report.summary()}", stacklevel=2)
    names = list(data.names)
    if split != "all":
        names = split_classes(names, fractions, seed)[normalize_split(split)]
    return build_store(data, [(n, 0) for n in names], f"{root} ({split})", "")


def split_classes(
    names: list[str], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Class names divided into train / val / test by ``fractions``, in a seeded order."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise SplitError(
            f"fractions must be three non-negative numbers summing to 1; got {fractions}"
        )
    ordered = hashed_order(names, seed)
    n_train = round(fractions[0] * len(names))
    n_val = round(fractions[1] * len(names))
    parts = {
        "train": ordered[:n_train],
        "val": ordered[n_train : n_train + n_val],
        "test": ordered[n_train + n_val :],
    }
    empty = [s for s, f in zip(parts, fractions, strict=True) if f > 0 and not parts[s]]
    if empty:
        raise SplitError(
            f"{len(names)} classes are too few to give every split a class with fractions "
            f"{fractions} ({', '.join(empty)} would be empty): add class folders, change the "
            "fractions, or load split='all'."
        )
    return parts
