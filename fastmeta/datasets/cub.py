"""CUB-200-2011 birds (Wah et al. 2011) with the few-shot class split of Chen et al. (2019).

Reads the images from the extracted ``CUB_200_2011/images/<class>/*.jpg`` tree (checked against
``CUB_200_2011/images.txt`` when present) or straight from ``CUB_200_2011.tgz``, resizes them to
84x84 RGB (the whole image, aspect ratio not kept) and caches the array. The split lists
``splits/{train,val,test}.json`` name class folders (100 / 50 / 50 classes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastmeta.data.store import ImageStore

from .archives import read_members
from .cache import LabelledImages, fingerprint, load_or_build
from .download import Resource, ensure, split_list_resources
from .errors import CorruptDataError, MissingDataError
from .imaging import DecodeSpec, decode_images
from .integrity import verify_manifest
from .paths import PathLike, data_root, normalize_split
from .splits import build_store

NAME = "cub"
SIZE = 84
ARCHIVE = Resource(
    "CUB_200_2011.tgz",
    urls=("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",),
    sha256="0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
    size=1_150_585_339,
    source="official: CaltechDATA record 65de6-vp158 (CUB-200-2011)",
)
_TORCHMETA = (
    "https://raw.githubusercontent.com/tristandeleu/pytorch-meta/"
    "d55d89ebd47f340180267106bde3e4b723f23762/torchmeta/datasets/assets/cub"
)
SPLIT_LISTS = split_list_resources(
    "splits/{split}.json",
    _TORCHMETA + "/{split}.json",
    {
        "train": "ec90b228abb6100266ec7efd5513ec62d42c2507ccb366f25c42debfd2b5da2e",
        "val": "fff92a7293e7e529185a3d2be7d6ec3956fafe916996668384d7bc5d798b8903",
        "test": "41c79218a7bd4c2f805623e52e4fa9653e28e063638e8121efcd81183cf7ecc5",
    },
    "Chen et al. (2019) class split as published by tristandeleu/pytorch-meta@d55d89eb",
)
RESOURCES = (ARCHIVE, *SPLIT_LISTS.values())
_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _image_members(root: Path, fix: str) -> tuple[Path, list[str] | None]:
    """The source (images folder or archive) and, for a folder with images.txt, its file list."""
    tree = root / "CUB_200_2011" / "images"
    if tree.is_dir():
        listing = root / "CUB_200_2011" / "images.txt"
        if not listing.is_file():
            return tree, None
        names = [line.split(maxsplit=1)[1] for line in listing.read_text().splitlines() if line]
        absent = [n for n in names if not (tree / n).is_file()]
        if absent:
            raise MissingDataError(
                f"{listing} lists {len(names)} images, {len(absent)} missing from {tree} "
                f"(first: {', '.join(absent[:3])}). {fix}"
            )
        return tree, names
    return root / ARCHIVE.path, None


def _is_image(name: str) -> bool:
    parts = name.split("/")
    return (
        name.lower().endswith(_EXTENSIONS)
        and len(parts) >= 2
        and not parts[-1].startswith(".")
        and (len(parts) == 2 or parts[-3] == "images")
    )


def read_cub(
    root: Path, image_size: int, cache_dir: PathLike | None, download: bool, workers: int | None
) -> LabelledImages:
    """All CUB-200-2011 images, labelled by class folder name (``"001.Black_footed_Albatross"``)."""
    fix = f"Restore the original files or run `fastmeta data download {NAME} --root {root}`."
    if not (root / "CUB_200_2011" / "images").is_dir():
        ensure([ARCHIVE], root, NAME, download)
    source, listed = _image_members(root, fix)
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    key = {"dataset": NAME, "size": image_size, "files": fingerprint(root, files)}

    def build() -> LabelledImages:
        if source.is_file():
            verify_manifest(root, [source], fix)
        select = set(listed).__contains__ if listed is not None else _is_image
        items = read_members(source, select, fix)
        decoded = decode_images(items, DecodeSpec(image_size, "RGB"), None, workers)
        if decoded.failures:
            shown = "; ".join(f"{n}: {why}" for n, why in decoded.failures[:3])
            raise CorruptDataError(
                f"{len(decoded.failures)} CUB image(s) could not be decoded ({shown}). {fix}"
            )
        if not decoded.names:
            raise CorruptDataError(f"no images (<class>/*.jpg) found in {source}. {fix}")
        classes = [name.split("/")[-2] for name in decoded.names]
        names = sorted(set(classes))
        index = {name: i for i, name in enumerate(names)}
        labels = np.array([index[c] for c in classes], dtype=np.int64)
        return LabelledImages(decoded.images, labels, names)

    return load_or_build(key, build, cache_dir)


def load_cub(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = SIZE,
    *,
    cache_dir: PathLike | None = None,
    download: bool = False,
    workers: int | None = None,
) -> ImageStore:
    """One CUB split (100 / 50 / 50 bird classes) as an :class:`ImageStore` of RGB images.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: dataset folder (default ``$FASTMETA_DATA/cub``) with ``CUB_200_2011/`` or
            ``CUB_200_2011.tgz``, and ``splits/``.
        image_size: side of the square images (84 in the few-shot literature).
        cache_dir: where decoded arrays are cached (default ``$FASTMETA_CACHE``).
        download: fetch missing files from the official sources.
        workers: decoding processes (default: the usable CPUs).
    """
    split = normalize_split(split)
    folder = data_root(NAME, root)
    resource = SPLIT_LISTS[split]
    ensure([resource], folder, NAME, download)
    path = folder / resource.path
    fix = f"Run `fastmeta data download {NAME} --root {folder}` to restore the published lists."
    verify_manifest(folder, [path], fix)
    try:
        names = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CorruptDataError(f"{path} is not valid JSON ({error}). {fix}") from error
    data = read_cub(folder, image_size, cache_dir, download, workers)
    return build_store(data, [(n, 0) for n in names], str(path), fix)
