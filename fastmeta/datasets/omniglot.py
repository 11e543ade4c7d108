"""Omniglot (Lake et al. 2015) from its two original zips, as 28x28 inverted grey images.

Reads ``images_background.zip`` and ``images_evaluation.zip`` (or their extracted folders) and
decodes all 32,460 PNGs once into a cached uint8 array (LANCZOS resize, strokes bright as in
MAML). Two splits are offered:

- ``"vinyals"`` (default): the lists ``splits/vinyals/{train,val,test}.txt`` of Vinyals et al. /
  Prototypical Networks, whose lines ``Alphabet/characterNN/rotDDD`` are the classes
  (4112 / 688 / 1692 rotated characters);
- ``"maml"``: MAML's random character split, 1100 / 100 / 423 characters, each at 0/90/180/270
  degrees as four classes. The order is fixed by ``seed`` over the character names (see
  :func:`~fastmeta.datasets.splits.hashed_order`), so it is reproducible everywhere; MAML's own
  shuffle depended on the filesystem's listing order and cannot be reproduced exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastmeta.data.store import ImageStore

from .archives import list_members, read_members
from .cache import LabelledImages, fingerprint, load_or_build
from .download import Resource, ensure, split_list_resources
from .errors import CorruptDataError, SplitError
from .imaging import DecodeSpec, decode_images
from .integrity import verify_manifest
from .paths import PathLike, data_root, normalize_split
from .splits import build_store, hashed_order, read_list

NAME = "omniglot"
PARTS = ("images_background", "images_evaluation")
MAML_SIZES = {"train": 1100, "val": 100}
SCHEMES = ("vinyals", "maml")

_OFFICIAL = "https://raw.githubusercontent.com/brendenlake/omniglot"
_OFFICIAL_COMMIT = "057f034baf2ecb8530bc5710e5a23584d2a519cc"
_VINYALS = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/"
    "c9bb4d258267c11cb6e23f0a19242d24ca98ad8a/data/omniglot/splits/vinyals"
)
ARCHIVES = (
    Resource(
        "images_background.zip",
        urls=(
            f"{_OFFICIAL}/{_OFFICIAL_COMMIT}/python/images_background.zip",
            f"{_OFFICIAL}/master/python/images_background.zip",
        ),
        md5="68d2efa1b9178cc56df9314c21c6e718",
        size=9_464_212,
        source="official: github.com/brendenlake/omniglot (python/); publisher gives md5 only",
    ),
    Resource(
        "images_evaluation.zip",
        urls=(
            f"{_OFFICIAL}/{_OFFICIAL_COMMIT}/python/images_evaluation.zip",
            f"{_OFFICIAL}/master/python/images_evaluation.zip",
        ),
        md5="6b91aef0f799c5bb55b94e3f2daec811",
        size=6_462_886,
        source="official: github.com/brendenlake/omniglot (python/); publisher gives md5 only",
    ),
)
SPLIT_LISTS = split_list_resources(
    "splits/vinyals/{split}.txt",
    _VINYALS + "/{split}.txt",
    {
        "train": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
        "val": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
        "test": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
    },
    "Vinyals split as published by jakesnell/prototypical-networks@c9bb4d25",
)
RESOURCES = (*ARCHIVES, *SPLIT_LISTS.values())


def _sources(root: Path) -> dict[str, Path]:
    """The zip (preferred) or extracted folder of each part that is present under ``root``."""
    found = {}
    for part in PARTS:
        for candidate in (root / f"{part}.zip", root / part, root / "omniglot-py" / part):
            if candidate.exists():
                found[part] = candidate
                break
    return found


def read_omniglot(
    root: PathLike | None = None,
    image_size: int = 28,
    *,
    invert: bool = True,
    cache_dir: PathLike | None = None,
    download: bool = False,
    workers: int | None = None,
) -> LabelledImages:
    """All Omniglot images, one label per character (``"Alphabet/characterNN"``, sorted).

    Decoded once and cached; later calls with unchanged files and options read the cache.
    """
    folder = data_root(NAME, root)
    sources = _sources(folder)
    if len(sources) < len(PARTS):
        missing = [r for r in ARCHIVES if r.path.removesuffix(".zip") not in sources]
        ensure(missing, folder, NAME, download)
        sources = _sources(folder)
    files = [p for src in sources.values() for p in ([src] if src.is_file() else src.rglob("*"))]
    key = {
        "dataset": NAME,
        "size": image_size,
        "invert": invert,
        "files": fingerprint(folder, [p for p in files if p.is_file()]),
    }
    return load_or_build(
        key, lambda: _decode(folder, sources, image_size, invert, workers), cache_dir
    )


def _decode(
    folder: Path, sources: dict[str, Path], image_size: int, invert: bool, workers: int | None
) -> LabelledImages:
    fix = (
        "Get the originals from github.com/brendenlake/omniglot or run "
        f"`fastmeta data download {NAME} --root {folder}`."
    )
    verify_manifest(folder, [p for p in sources.values() if p.is_file()], fix)
    count = sum(len([n for n in list_members(s, fix) if _is_image(n)]) for s in sources.values())
    if count == 0:
        raise CorruptDataError(
            f"no Omniglot PNGs (<Alphabet>/characterNN/*.png) found in {list(sources.values())}; "
            f"these are not the Omniglot archives. {fix}"
        )
    items = (item for source in sources.values() for item in read_members(source, _is_image, fix))
    decoded = decode_images(items, DecodeSpec(image_size, "L", invert=invert), count, workers)
    if decoded.failures:
        shown = "; ".join(f"{n}: {why}" for n, why in decoded.failures[:3])
        raise CorruptDataError(
            f"{len(decoded.failures)} Omniglot image(s) could not be decoded ({shown}). {fix}"
        )
    characters = [_character(name) for name in decoded.names]
    names = sorted(set(characters))
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[c] for c in characters], dtype=np.int64)
    return LabelledImages(decoded.images, labels, names)


def _is_image(name: str) -> bool:
    parts = name.split("/")
    return name.lower().endswith(".png") and len(parts) >= 3 and not parts[-1].startswith(".")


def _character(name: str) -> str:
    alphabet, character = name.split("/")[-3:-1]
    return f"{alphabet}/{character}"


def _split_classes(
    data: LabelledImages, split: str, scheme: str, root: Path, seed: int, download: bool
) -> tuple[list[tuple[str, int]], str]:
    """The (character, quarter turns) classes of ``split`` and a description of their source."""
    if scheme == "maml":
        characters = hashed_order(sorted(data.names), seed)
        needed = sum(MAML_SIZES.values())
        if len(characters) <= needed:
            raise SplitError(
                f"the MAML split takes {MAML_SIZES['train']} train and {MAML_SIZES['val']} val "
                f"characters and tests on the rest, but only {len(characters)} characters were "
                f"found in {root}: use the complete Omniglot archives."
            )
        start = {"train": 0, "val": MAML_SIZES["train"], "test": needed}[split]
        stop = {"train": MAML_SIZES["train"], "val": needed, "test": len(characters)}[split]
        chosen = characters[start:stop]
        return [(c, turns) for c in chosen for turns in range(4)], f"MAML split (seed {seed})"
    resource = SPLIT_LISTS[split]
    ensure([resource], root, NAME, download)
    path = root / resource.path
    fix = f"Run `fastmeta data download {NAME} --root {root}` to restore the published lists."
    verify_manifest(root, [path], fix)
    classes = []
    for number, line in enumerate(read_list(path, fix), start=1):
        parts = line.split("/")
        degrees = parts[-1].removeprefix("rot")
        if len(parts) != 3 or degrees not in ("000", "090", "180", "270"):
            raise SplitError(
                f"{path}, line {number}: {line!r} is not 'Alphabet/characterNN/rotDDD' with "
                f"DDD in 000/090/180/270. {fix}"
            )
        classes.append((f"{parts[0]}/{parts[1]}", int(degrees) // 90))
    return classes, str(path)


def load_omniglot(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = 28,
    *,
    scheme: str = "vinyals",
    seed: int = 1,
    invert: bool = True,
    cache_dir: PathLike | None = None,
    download: bool = False,
    workers: int | None = None,
) -> ImageStore:
    """One Omniglot split as an :class:`ImageStore` (1 channel, uint8, strokes bright).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder with the zips (default ``$FASTMETA_DATA/omniglot``).
        image_size: side of the square images (28 as in MAML; 105 keeps the originals).
        scheme: ``"vinyals"`` (published lists, rotations as listed) or ``"maml"``.
        seed: fixes the MAML character split.
        invert: strokes bright on a dark background (as in MAML); False keeps the originals.
        cache_dir: where decoded arrays are cached (default ``$FASTMETA_CACHE``).
        download: fetch missing files from the official sources.
        workers: decoding processes (default: the usable CPUs).
    """
    split = normalize_split(split)
    if scheme not in SCHEMES:
        raise SplitError(f"unknown Omniglot split scheme {scheme!r}: choose one of {SCHEMES}")
    folder = data_root(NAME, root)
    data = read_omniglot(
        folder, image_size, invert=invert, cache_dir=cache_dir, download=download, workers=workers
    )
    classes, where = _split_classes(data, split, scheme, folder, seed, download)
    fix = "The split list and the Omniglot archives must come from the same release."
    return build_store(data, classes, where, fix)
