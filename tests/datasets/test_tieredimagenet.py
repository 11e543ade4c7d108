"""tiered-ImageNet in its released pickle format, built from classes of the REAL split lists."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from fastmeta.datasets import CorruptDataError, MissingDataError, load_tieredimagenet

from .conftest import colour, encode, shared_root

PER_CLASS = 3


def real_classes(split: str, count: int = 4) -> tuple[list[str], list[str], list[int]]:
    """Names of the first classes of the real list, their category names, category indices."""
    root = shared_root("tieredimagenet") / "splits"
    words = dict(line.split("\t", 1) for line in (root / "words.txt").read_text().splitlines())
    rows = [line.split(",") for line in (root / f"{split}.csv").read_text().split()][:count]
    categories = list(dict.fromkeys(category for _, category in rows))
    return (
        [words[wnid] for wnid, _ in rows],
        [words[c] for c in categories],
        [categories.index(category) for _, category in rows],
    )


def images_for(classes: int, size: int = 84, channels: int = 3) -> list[np.ndarray]:
    return [colour(10 * c + i, size, channels) for c in range(classes) for i in range(PER_CLASS)]


def write_release(
    root: Path,
    split: str,
    images: list[np.ndarray],
    names: list[str],
    general: list[str],
    general_of: list[int],
    bytes_keys: bool = False,
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    encoded = [np.frombuffer(encode(image), np.uint8) for image in images]
    specific = np.repeat(np.arange(len(names)), PER_CLASS)[: len(images)]
    labels = {
        "label_specific": specific.astype(np.int32),
        "label_general": np.asarray(general_of, np.int32)[specific],
        "label_specific_str": names,
        "label_general_str": general,
    }
    if bytes_keys:  # as a Python 2 pickle reads back with encoding="bytes"
        labels = {k.encode(): v for k, v in labels.items()}
    (root / f"{split}_images_png.pkl").write_bytes(pickle.dumps(encoded))
    (root / f"{split}_labels.pkl").write_bytes(pickle.dumps(labels))


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_png_pickle_release(tmp_path: Path, bytes_keys: bool) -> None:
    names, general, general_of = real_classes("train")
    images = images_for(len(names))
    write_release(tmp_path / "t", "train", images, names, general, general_of, bytes_keys)
    store = load_tieredimagenet("train", tmp_path / "t", cache_dir=tmp_path / "cache")
    assert store.base_names == names and store.num_classes == 4
    assert store.images.shape == (4 * PER_CLASS, 3, 84, 84)
    assert np.array_equal(store.images[0].numpy(), images[0].transpose(2, 0, 1))
    assert store.class_sizes.tolist() == [PER_CLASS] * 4


def test_uncompressed_npz_variant_is_bgr(tmp_path: Path) -> None:
    names, general, general_of = real_classes("val", 2)
    images = images_for(2)
    write_release(tmp_path / "t", "val", images, names, general, general_of)
    (tmp_path / "t" / "val_images_png.pkl").unlink()
    bgr = np.stack(images)[..., ::-1]  # what the reference decompress() (OpenCV) writes
    np.savez(tmp_path / "t" / "val_images.npz", images=bgr)
    store = load_tieredimagenet("val", tmp_path / "t", cache_dir=tmp_path / "cache")
    assert np.array_equal(store.images[1].numpy(), images[1].transpose(2, 0, 1))


def test_resize_on_request(tmp_path: Path) -> None:
    names, general, general_of = real_classes("test", 2)
    write_release(tmp_path / "t", "test", images_for(2), names, general, general_of)
    store = load_tieredimagenet("test", tmp_path / "t", 32, cache_dir=tmp_path / "cache")
    assert store.image_shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("images", "reason"),
    [
        (images_for(2, size=32), "wrong size 32x32, expected 84x84"),
        (images_for(2, channels=1), "wrong mode L, expected RGB"),
    ],
)
def test_wrong_size_or_mode_png(tmp_path: Path, images: list, reason: str) -> None:
    names, general, general_of = real_classes("train", 2)
    write_release(tmp_path / "t", "train", images, names, general, general_of)
    with pytest.raises(CorruptDataError) as error:
        load_tieredimagenet("train", tmp_path / "t", cache_dir=tmp_path / "cache")
    assert reason in str(error.value) and "train_images_png.pkl[0]" in str(error.value)
    assert "Replace the file" in str(error.value)


def test_labels_and_images_from_different_splits(tmp_path: Path) -> None:
    names, general, general_of = real_classes("train", 2)
    write_release(tmp_path / "t", "train", images_for(2), names, general, general_of)
    write_release(tmp_path / "v", "train", images_for(1), names[:1], general, general_of)
    (tmp_path / "v" / "train_images_png.pkl").replace(tmp_path / "t" / "train_images_png.pkl")
    with pytest.raises(CorruptDataError, match=r"3 images but train_labels\.pkl 6 labels"):
        load_tieredimagenet("train", tmp_path / "t", cache_dir=tmp_path / "cache")


def test_labels_pickle_missing_a_key(tmp_path: Path) -> None:
    names, general, general_of = real_classes("train", 2)
    write_release(tmp_path / "t", "train", images_for(2), names, general, general_of)
    (tmp_path / "t" / "train_labels.pkl").write_bytes(pickle.dumps({"labels": [0, 1]}))
    with pytest.raises(CorruptDataError, match="no 'label_specific' entry \\(its keys: labels\\)"):
        load_tieredimagenet("train", tmp_path / "t", cache_dir=tmp_path / "cache")


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as error:
        load_tieredimagenet("val", tmp_path / "none", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "val_labels.pkl" in message and "val_images_png.pkl" in message
    assert "val_images.npz" in message and str(tmp_path / "none") in message
