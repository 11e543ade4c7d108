"""CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018) from CIFAR-100's pickles.

Both pool CIFAR-100's train and test images (600 per class) and split its 100 classes:
CIFAR-FS by class (64 / 16 / 20, lists of fine class names), FC100 by superclass
(12 / 4 / 4 superclasses = 60 / 20 / 20 classes). The CIFAR-100 "python version" is read from
``cifar-100-python/{train,test,meta}`` or straight from ``cifar-100-python.tar.gz`` in the
dataset folder (a symlink lets both datasets share one copy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fastmeta.data.store import ImageStore

from .archives import read_members
from .cache import LabelledImages, fingerprint, load_or_build
from .download import Resource, ensure, split_list_resources
from .errors import CorruptDataError, SplitError
from .imaging import DecodeSpec, convert_arrays
from .integrity import verify_manifest
from .paths import PathLike, data_root, normalize_split
from .pickles import entry, load_data_pickle, text
from .splits import build_store, read_list

SIZE = 32
ARCHIVE = Resource(
    "cifar-100-python.tar.gz",
    urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    size=169_001_437,
    source="official: www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 python version)",
)
_TORCHMETA = (
    "https://raw.githubusercontent.com/tristandeleu/pytorch-meta/"
    "d55d89ebd47f340180267106bde3e4b723f23762/torchmeta/datasets/assets/cifar100"
)
_LIST_SHA256 = {
    "cifar-fs": {
        "train": "e0feef3aef13fc7320d5deef5ae77d91edd28041d9a173939ec48cea68135ef0",
        "val": "d9d6e267b5dad5c2267ff7dd98ebb18bb016f7929b56839422bb34fb53bcb3ef",
        "test": "e199c74ef4f014ea3f74da1b6cf74795d32747183426c2a7e6ee4308d3bf47e3",
    },
    "fc100": {
        "train": "a19e219adef452c071eb09d14758a9c45562643b9aafa38826e679ed285e117b",
        "val": "6d228dac7040959f0c2f0385c53c2cd9a5369ba9eefd1b7cdceecb47041598c4",
        "test": "d2cf86db6ec0250993b18cb78ebde10758f06eaaaff1611390e4442ee7c6fc41",
    },
}
SPLIT_LISTS = {
    name: split_list_resources(
        "splits/{split}.json",
        f"{_TORCHMETA}/{name}/{{split}}.json",
        digests,
        f"{name} split as published by tristandeleu/pytorch-meta@d55d89eb",
    )
    for name, digests in _LIST_SHA256.items()
}
RESOURCES = {name: (ARCHIVE, *lists.values()) for name, lists in SPLIT_LISTS.items()}
CIFAR_FS_RESOURCES = RESOURCES["cifar-fs"]
FC100_RESOURCES = RESOURCES["fc100"]
_PARTS = ("train", "test", "meta")


def _source(root: Path) -> Path | None:
    for candidate in (root / "cifar-100-python", root / ARCHIVE.path):
        if candidate.exists():
            return candidate
    return None


def read_cifar100(
    root: Path, image_size: int, cache_dir: PathLike | None, download: bool, dataset: str
) -> LabelledImages:
    """All 60,000 CIFAR-100 images (train then test) labelled by fine class.

    ``meta["coarse"]`` gives the superclass name of each fine class.
    """
    source = _source(root)
    if source is None:
        ensure([ARCHIVE], root, dataset, download)
        source = root / ARCHIVE.path
    files = [source] if source.is_file() else [source / part for part in _PARTS]
    fix = f"Run `fastmeta data download {dataset} --root {root}`."
    key = {"dataset": "cifar100", "size": image_size, "files": fingerprint(root, files)}

    def build() -> LabelledImages:
        verify_manifest(root, files, fix)
        wanted = {f"cifar-100-python/{p}" if source.is_file() else p for p in _PARTS}
        found = {n.rsplit("/", 1)[-1]: b for n, b in read_members(source, wanted.__contains__, fix)}
        absent = [p for p in _PARTS if p not in found]
        if absent:
            raise CorruptDataError(
                f"{source} lacks cifar-100-python/{', '.join(absent)}: it is not the CIFAR-100 "
                f"python version. {fix}"
            )
        meta = load_data_pickle(found["meta"], f"{source}/meta")
        fine_names = [text(n) for n in entry(meta, "fine_label_names", f"{source}/meta")]
        coarse_names = [text(n) for n in entry(meta, "coarse_label_names", f"{source}/meta")]
        parts = [_read_part(found[p], f"{source}/{p}", len(fine_names)) for p in ("train", "test")]
        pixels = np.concatenate([p[0] for p in parts])
        fine = np.concatenate([p[1] for p in parts])
        coarse = np.concatenate([p[2] for p in parts])
        coarse_of = [""] * len(fine_names)
        for f, c in zip(fine.tolist(), coarse.tolist(), strict=True):
            coarse_of[f] = coarse_names[c]
        images = convert_arrays(
            pixels.reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1), DecodeSpec(image_size, "RGB")
        )
        return LabelledImages(images, fine, fine_names, {"coarse": coarse_of})

    return load_or_build(key, build, cache_dir)


def _read_part(data: bytes, where: str, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    content = load_data_pickle(data, where)
    pixels = entry(content, "data", where)
    fine = np.asarray(entry(content, "fine_labels", where), np.int64)
    coarse = np.asarray(entry(content, "coarse_labels", where), np.int64)
    row = 3 * SIZE * SIZE
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.shape[1:] != (row,):
        got = f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels)
        raise CorruptDataError(
            f"{where}: 'data' is {got}; CIFAR-100 stores each image as a row of {row} uint8 "
            f"values (32x32 RGB, channel-major). Replace the file with the original."
        )
    if not len(pixels) == len(fine) == len(coarse) or (fine.size and fine.max() >= classes):
        raise CorruptDataError(
            f"{where}: {len(pixels)} images but {len(fine)} fine / {len(coarse)} coarse labels "
            f"(or labels beyond the {classes} classes in meta); the file is damaged."
        )
    return pixels, fine, coarse


def _split_file(root: Path, dataset: str, split: str, download: bool) -> Path:
    """The split list: the published ``.json``, else a one-name-per-line ``.txt``."""
    for suffix in (".json", ".txt"):
        path = root / "splits" / f"{split}{suffix}"
        if path.is_file():
            return path
    resource = SPLIT_LISTS[dataset][split]
    ensure([resource], root, dataset, download)
    return root / resource.path


def _load(
    dataset: str,
    split: str,
    root: PathLike | None,
    image_size: int,
    cache_dir: PathLike | None,
    download: bool,
) -> ImageStore:
    split = normalize_split(split)
    folder = data_root(dataset, root)
    data = read_cifar100(folder, image_size, cache_dir, download, dataset)
    path = _split_file(folder, dataset, split, download)
    fix = f"Run `fastmeta data download {dataset} --root {folder}` to restore the published lists."
    verify_manifest(folder, [path], fix)
    if dataset == "cifar-fs":
        if path.suffix == ".json":  # [[superclass, class], ...]
            names = [pair[1] for pair in _read_json(path)]
        else:
            names = read_list(path, fix)
    else:
        if path.suffix == ".json":  # [superclass, ...]
            wanted = set(_read_json(path))
            coarse = data.meta["coarse"]
            unknown = sorted(wanted - set(coarse))
            if unknown:
                raise SplitError(
                    f"{path} names superclasses absent from CIFAR-100: {', '.join(unknown)}. {fix}"
                )
            names = [n for n, c in zip(data.names, coarse, strict=True) if c in wanted]
        else:  # superclass/class per line
            names = [line.split("/")[-1] for line in read_list(path, fix)]
    return build_store(data, [(n, 0) for n in names], str(path), fix)


def _read_json(path: Path) -> list[Any]:
    try:
        listed: list[Any] = json.loads(path.read_text())
        return listed
    except json.JSONDecodeError as error:
        raise CorruptDataError(f"{path} is not valid JSON ({error}); restore the list.") from error


def load_cifarfs(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = SIZE,
    *,
    cache_dir: PathLike | None = None,
    download: bool = False,
) -> ImageStore:
    """One CIFAR-FS split (64 / 16 / 20 CIFAR-100 classes, 600 images each).

    ``root`` (default ``$FASTMETA_DATA/cifar-fs``) holds CIFAR-100 and ``splits/``.
    """
    return _load("cifar-fs", split, root, image_size, cache_dir, download)


def load_fc100(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = SIZE,
    *,
    cache_dir: PathLike | None = None,
    download: bool = False,
) -> ImageStore:
    """One FC100 split (CIFAR-100 superclasses 12 / 4 / 4 = 60 / 20 / 20 classes).

    ``root`` (default ``$FASTMETA_DATA/fc100``) holds CIFAR-100 and ``splits/``.
    """
    return _load("fc100", split, root, image_size, cache_dir, download)
