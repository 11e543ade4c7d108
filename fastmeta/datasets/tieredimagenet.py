"""tiered-ImageNet (Ren et al. 2018) from its released pickle files.

Per split, the release holds ``{split}_images_png.pkl`` (a list of PNG-encoded 84x84 RGB images,
each a uint8 numpy array of the PNG bytes) and ``{split}_labels.pkl`` (a dict with
``label_specific`` [N] class index, ``label_general`` [N] category index, ``label_specific_str``
class names, ``label_general_str`` category names). The reference code also writes an
uncompressed ``{split}_images.npz`` (key ``images``, uint8 [N, 84, 84, 3]) decoded with OpenCV,
so its channels are in BGR order; it is read when the PNG pickle is absent and turned into RGB.
Classes are the 351 / 97 / 160 specific classes; a store's ``base_names`` are their names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastmeta.data.store import ImageStore

from .cache import LabelledImages, fingerprint, load_or_build
from .download import Resource, manual_message
from .errors import CorruptDataError, MissingDataError
from .imaging import DecodeSpec, convert_arrays, decode_images
from .paths import PathLike, data_root, normalize_split
from .pickles import entry, load_data_pickle, text
from .splits import build_store

NAME = "tieredimagenet"
SIZE = 84
_MANUAL = "no stable public URL: distributed by the authors (see docs/DATASETS.md)"
_REN = (
    "https://raw.githubusercontent.com/renmengye/few-shot-ssl-public/"
    "4ce8726c036ae2811050e9571e8d2b4b46b2acac/fewshot/data/tiered_imagenet_split"
)
_LIST_SHA256 = {
    "train": "6b87c8440f610d406bce85ac70db018485cc1b036a9106d512e75e4988eb3e15",
    "val": "e63540c17e82c2de98df9244b03cdb7e214ea513ae543d6dbc29998f9597cfc5",
    "test": "a478b4481aae4003b6b3c7a09f9ddc56b36f54652e01b83d07a8e6ee1b789d56",
}
RESOURCES = (
    *(
        Resource(
            f"splits/{split}.csv",
            urls=(f"{_REN}/{split}.csv",),
            sha256=digest,
            source="class lists (wnid, category), renmengye/few-shot-ssl-public@4ce8726c",
        )
        for split, digest in _LIST_SHA256.items()
    ),
    *(Resource(f"{split}_images_png.pkl", source=_MANUAL) for split in _LIST_SHA256),
    *(Resource(f"{split}_labels.pkl", source=_MANUAL) for split in _LIST_SHA256),
)


def _read_split(
    root: Path, split: str, image_size: int, cache_dir: PathLike | None, workers: int | None
) -> LabelledImages:
    labels_path = root / f"{split}_labels.pkl"
    png_path = root / f"{split}_images_png.pkl"
    npz_path = root / f"{split}_images.npz"
    images_path = png_path if png_path.is_file() else npz_path
    if not labels_path.is_file() or not images_path.is_file():
        needed = [Resource(p.name, source=_MANUAL) for p in (labels_path, png_path)]
        raise MissingDataError(
            f"tiered-ImageNet {split} needs {labels_path.name} and {png_path.name} "
            f"(or {npz_path.name}) in {root}.\n" + manual_message(needed, root)
        )
    key = {
        "dataset": NAME,
        "split": split,
        "size": image_size,
        "files": fingerprint(root, [labels_path, images_path]),
    }

    def build() -> LabelledImages:
        with open(labels_path, "rb") as handle:
            content = load_data_pickle(handle, str(labels_path))
        specific = np.asarray(entry(content, "label_specific", str(labels_path)), np.int64)
        names = [text(n) for n in entry(content, "label_specific_str", str(labels_path))]
        if specific.size and (specific.min() < 0 or specific.max() >= len(names)):
            raise CorruptDataError(
                f"{labels_path}: label_specific holds values outside 0..{len(names) - 1} "
                f"(one per label_specific_str name); the file is damaged."
            )
        spec = DecodeSpec(image_size, "RGB")
        images = (
            _decode_png_pickle(png_path, spec, workers)
            if images_path == png_path
            else _read_npz(npz_path, spec)
        )
        if len(images) != len(specific):
            raise CorruptDataError(
                f"{images_path.name} holds {len(images)} images but {labels_path.name} "
                f"{len(specific)} labels: the two files come from different splits or releases."
            )
        return LabelledImages(images, specific, names)

    return load_or_build(key, build, cache_dir)


def _decode_png_pickle(path: Path, spec: DecodeSpec, workers: int | None) -> np.ndarray:
    with open(path, "rb") as handle:
        encoded = load_data_pickle(handle, str(path))
    if not isinstance(encoded, list):
        raise CorruptDataError(
            f"{path} holds a {type(encoded).__name__}; the tiered-ImageNet format is a list of "
            "PNG-encoded images. Replace it with the released file."
        )
    strict = DecodeSpec(spec.size, "RGB", require_size=(SIZE, SIZE), require_mode="RGB")
    items = (
        (f"{path.name}[{i}]", np.asarray(b, np.uint8).tobytes()) for i, b in enumerate(encoded)
    )
    decoded = decode_images(items, strict, len(encoded), workers)
    if decoded.failures:
        shown = "; ".join(f"{n}: {why}" for n, why in decoded.failures[:3])
        raise CorruptDataError(
            f"{len(decoded.failures)} image(s) in {path} are unusable ({shown}); the release "
            f"holds {SIZE}x{SIZE} RGB PNGs. Replace the file with the released one."
        )
    return decoded.images


def _read_npz(path: Path, spec: DecodeSpec) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive["images"]
    except (KeyError, ValueError, OSError) as error:
        raise CorruptDataError(
            f"{path} is not an npz file with an 'images' array ({error}); replace it."
        ) from error
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise CorruptDataError(
            f"{path}: images is a {images.dtype} array of shape {images.shape}; expected uint8 "
            f"[N, {SIZE}, {SIZE}, 3] (BGR, as written by the reference decompress script)."
        )
    return convert_arrays(images[..., ::-1], spec)


def load_tieredimagenet(
    split: str = "train",
    root: PathLike | None = None,
    image_size: int = SIZE,
    *,
    cache_dir: PathLike | None = None,
    workers: int | None = None,
) -> ImageStore:
    """One tiered-ImageNet split (351 / 97 / 160 classes) as an :class:`ImageStore`.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: folder with the pickles (default ``$FASTMETA_DATA/tieredimagenet``).
        image_size: side of the square RGB images (84 as released).
        cache_dir: where decoded arrays are cached (default ``$FASTMETA_CACHE``).
        workers: PNG decoding processes (default: the usable CPUs).
    """
    split = normalize_split(split)
    folder = data_root(NAME, root)
    data = _read_split(folder, split, image_size, cache_dir, workers)
    where = f"tiered-ImageNet {split} ({folder})"
    return build_store(data, [(name, 0) for name in data.names], where, "Check the files.")
