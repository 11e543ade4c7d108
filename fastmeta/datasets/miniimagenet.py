"""mini-ImageNet (Vinyals et al. 2016; Ravi & Larochelle 2017 split) from either common format.

- ``"csv"``: the Ravi & Larochelle lists ``{split}.csv`` (header ``filename,label``; in
  ``splits/`` or the root) with the images in ``images/<filename>``, resized to 84x84 RGB.
- ``"pickle"``: ``mini-imagenet-cache-{split}.pkl``, a dict with ``image_data`` (uint8
  ``[N, 84, 84, 3]``) and ``class_dict`` (``{wnid: [image indices]}``).

The images have no stable public URL (they are ImageNet crops): place them by hand; the split
lists download from their published source. When a split list is present, a pickle's classes
are checked against it, so a pickle of another split is caught.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fastmeta.data.store import ImageStore

from .cache import LabelledImages, fingerprint, fingerprint_names, load_or_build
from .download import Resource, ensure, manual_message, split_list_resources
from .errors import CorruptDataError, MissingDataError, SplitError
from .imaging import DecodeSpec, convert_arrays, decode_images
from .integrity import verify_manifest
from .paths import PathLike, data_root, normalize_split
from .pickles import entry, load_data_pickle
from .splits import build_store

NAME = "miniimagenet"
SIZE = 84
SOURCES = ("auto", "csv", "pickle")
_RAVI = (
    "https://raw.githubusercontent.com/twitter/meta-learning-lstm/"
    "0df7fc747a219b7dd04e846d75eb8164483b304b/data/miniImagenet"
)
SPLIT_LISTS = split_list_resources(
    "splits/{split}.csv",
    _RAVI + "/{split}.csv",
    {
        "train": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
        "val": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
        "test": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
    },
    "Ravi & Larochelle split, twitter/meta-learning-lstm@0df7fc74",
)
_MANUAL = "no stable public URL: ImageNet crops, distributed by the authors (see docs/DATASETS.md)"
PICKLES = {
    split: Resource(f"mini-imagenet-cache-{split}.pkl", source=_MANUAL) for split in SPLIT_LISTS
}
IMAGES = Resource("images/", source=_MANUAL + "; files named as in the csv lists")
RESOURCES = (*SPLIT_LISTS.values(), *PICKLES.values(), IMAGES)


def split_list_path(root: Path, split: str) -> Path | None:
    """The Ravi csv for ``split``: ``splits/{split}.csv`` or ``{split}.csv``, if present."""
    for path in (root / "splits" / f"{split}.csv", root / f"{split}.csv"):
        if path.is_file():
            return path
    return None


def read_split_csv(path: Path) -> list[tuple[str, str]]:
    """``(filename, label)`` rows of a Ravi & Larochelle csv (header ``filename,label``)."""
    with open(path, newline="") as handle:
        text = handle.read()
    if '"' in text:  # quoted fields: the csv module's rules
        rows = [row for row in csv.reader(text.splitlines()) if row]
    else:  # the published lists: plain comma-separated lines, split a few times faster
        rows = [line.split(",") for line in text.splitlines() if line]
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise CorruptDataError(
            f"{path} does not start with the header 'filename,label' of the Ravi & Larochelle "
            "split lists; replace it with the published list."
        )
    bad = [i for i, row in enumerate(rows[1:], start=2) if len(row) != 2]
    if bad:
        raise CorruptDataError(f"{path}, line {bad[0]}: expected 'filename,label'.")
    return [(name.strip(), label.strip()) for name, label in rows[1:]]


def _read_csv_split(
    root: Path,
    split: str,
    image_size: int,
    cache_dir: PathLike | None,
    download: bool,
    workers: int | None,
) -> LabelledImages:
    listed = split_list_path(root, split)
    if listed is None:
        ensure([SPLIT_LISTS[split]], root, NAME, download)
        listed = root / SPLIT_LISTS[split].path
    verify_manifest(root, [listed], f"Run `fastmeta data download {NAME} --root {root}`.")
    rows = read_split_csv(listed)
    folder = root / "images"
    below_root = [listed.relative_to(root).as_posix(), *(f"images/{name}" for name, _ in rows)]
    files, absent = fingerprint_names(root, below_root)
    if absent:
        shown = ", ".join(name.removeprefix("images/") for name in absent[:3])
        raise MissingDataError(
            f"{listed} names {len(rows)} images, {len(absent)} of them missing from {folder} "
            f"(first: {shown}). Put the mini-ImageNet images, named as in the "
            "csv, in that folder, or use the mini-imagenet-cache-{split}.pkl format."
        )
    key = {"dataset": NAME, "format": "csv", "split": split, "size": image_size, "files": files}

    def build() -> LabelledImages:
        items = ((name, (folder / name).read_bytes()) for name, _ in rows)
        decoded = decode_images(items, DecodeSpec(image_size, "RGB"), len(rows), workers)
        if decoded.failures:
            shown = "; ".join(f"{n}: {why}" for n, why in decoded.failures[:3])
            raise CorruptDataError(
                f"{len(decoded.failures)} image(s) in {folder} could not be decoded ({shown}); "
                "replace them with the original images."
            )
        label_of = dict(rows)
        names = list(dict.fromkeys(label for _, label in rows))
        index = {name: i for i, name in enumerate(names)}
        labels = np.array([index[label_of[n]] for n in decoded.names], dtype=np.int64)
        return LabelledImages(decoded.images, labels, names)

    return load_or_build(key, build, cache_dir)


def _read_pickle_split(
    root: Path, split: str, image_size: int, cache_dir: PathLike | None
) -> LabelledImages:
    path = root / PICKLES[split].path
    key = {
        "dataset": NAME,
        "format": "pickle",
        "split": split,
        "size": image_size,
        "files": fingerprint(root, [path]),
    }

    def build() -> LabelledImages:
        with open(path, "rb") as handle:
            content = load_data_pickle(handle, str(path))
        images = entry(content, "image_data", str(path))
        class_dict = entry(content, "class_dict", str(path))
        _check_images(images, path)
        labels = _labels_from_class_dict(class_dict, len(images), path)
        names = [str(name) for name in class_dict]
        return LabelledImages(convert_arrays(images, DecodeSpec(image_size, "RGB")), labels, names)

    data = load_or_build(key, build, cache_dir)
    listed = split_list_path(root, split)
    if listed is not None:
        allowed = {label for _, label in read_split_csv(listed)}
        foreign = [name for name in data.names if name not in allowed]
        if foreign:
            raise SplitError(
                f"{path} holds {len(foreign)} class(es) not in the {split} list {listed} "
                f"(first: {', '.join(foreign[:3])}): the pickle belongs to another split or "
                f"release. Use the mini-imagenet-cache-{split}.pkl that matches the list."
            )
    return data


def _check_images(images: object, path: Path) -> None:
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[1:] != (SIZE, SIZE, 3)
    ):
        got = (
            f"{images.dtype} array of shape {images.shape}"
            if isinstance(images, np.ndarray)
            else type(images).__name__
        )
        raise CorruptDataError(
            f"{path}: image_data is a {got}; the mini-ImageNet pickle format holds RGB images "
            f"as a uint8 array [N, {SIZE}, {SIZE}, 3]. Rebuild the pickle from the original "
            "84x84 RGB images, or use the csv + images/ format."
        )


def _labels_from_class_dict(class_dict: object, count: int, path: Path) -> np.ndarray:
    if not isinstance(class_dict, dict) or not class_dict:
        raise CorruptDataError(f"{path}: class_dict must be a non-empty {{wnid: [indices]}} dict.")
    labels = np.full(count, -1, dtype=np.int64)
    for label, indices in enumerate(class_dict.values()):
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= count):
            raise CorruptDataError(
                f"{path}: class_dict points at images outside 0..{count - 1}; the file is damaged."
            )
        if (labels[indices] >= 0).any():
            raise CorruptDataError(f"{path}: class_dict puts an image in two classes.")
        labels[indices] = label
    if (labels < 0).any():
        raise CorruptDataError(
            f"{path}: {int((labels < 0).sum())} image(s) belong to no class in class_dict; "
            "the file is damaged or incomplete."
        )
    return labels


def load_miniimagenet(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = SIZE,
    *,
    source: str = "auto",
    cache_dir: PathLike | None = None,
    download: bool = False,
    workers: int | None = None,
) -> ImageStore:
    """One mini-ImageNet split (64 / 16 / 20 classes of 600 images) as an :class:`ImageStore`.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: dataset folder (default ``$FASTMETA_DATA/miniimagenet``).
        image_size: side of the square RGB images (84 in the literature).
        source: ``"pickle"``, ``"csv"`` (csv lists + ``images/``), or ``"auto"`` (the pickle
            when present, else the csv layout).
        cache_dir: where decoded arrays are cached (default ``$FASTMETA_CACHE``).
        download: fetch a missing split list (the images themselves must be placed by hand).
        workers: decoding processes for the csv layout (default: the usable CPUs).
    """
    split = normalize_split(split)
    if source not in SOURCES:
        raise SplitError(f"unknown mini-ImageNet source {source!r}: choose one of {SOURCES}")
    folder = data_root(NAME, root)
    has_pickle = (folder / PICKLES[split].path).is_file()
    if source == "pickle" or (source == "auto" and has_pickle):
        if not has_pickle:
            raise MissingDataError(manual_message([PICKLES[split]], folder))
        data = _read_pickle_split(folder, split, image_size, cache_dir)
    elif source == "csv" or (folder / "images").is_dir():
        data = _read_csv_split(folder, split, image_size, cache_dir, download, workers)
    else:
        raise MissingDataError(
            f"mini-ImageNet {split}: found neither {PICKLES[split].path} nor an images/ folder "
            f"in {folder}. Provide one of the two formats:\n"
            + manual_message([PICKLES[split]], folder)
            + f"\n  or images/<filename> for every row of splits/{split}.csv "
            f"(the list downloads with: fastmeta data download {NAME} --root {folder})"
        )
    where = f"mini-ImageNet {split} ({folder})"
    return build_store(data, [(name, 0) for name in data.names], where, "Check the files.")
