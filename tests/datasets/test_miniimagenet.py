"""mini-ImageNet in both published formats, built tiny from rows of the REAL split lists."""

from __future__ import annotations

import csv
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastmeta.data.store import ImageStore
from fastmeta.datasets import CorruptDataError, MissingDataError, SplitError, load_miniimagenet
from tests.miniimagenet_subset import first_rows

from .conftest import encode, shared_root

CLASSES, PER_CLASS = 5, 3


def real_rows(split: str) -> list[tuple[str, str]]:
    """The first images of the first classes of the real Ravi & Larochelle list."""
    return first_rows(shared_root("miniimagenet"), split, PER_CLASS, CLASSES)


def solid(class_index: int, size: tuple[int, int] = (100, 90)) -> np.ndarray:
    """An RGB image of one colour per class, so labels can be checked after resizing."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[...] = (40 * class_index + 20, 200 - 30 * class_index, 60)
    return image


@pytest.fixture
def csv_root(tmp_path: Path) -> Path:
    root = tmp_path / "miniimagenet"
    (root / "images").mkdir(parents=True)
    rows = real_rows("train")
    with open(root / "train.csv", "w", newline="") as handle:  # Ravi layout: lists at the root
        csv.writer(handle).writerows([("filename", "label"), *rows])
    labels = list(dict.fromkeys(label for _, label in rows))
    for filename, label in rows:
        (root / "images" / filename).write_bytes(encode(solid(labels.index(label)), "JPEG"))
    return root


def write_pickle(root: Path, split: str, images: np.ndarray, class_dict: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"mini-imagenet-cache-{split}.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"image_data": images, "class_dict": class_dict}, handle)
    return path


@pytest.fixture
def pickle_root(tmp_path: Path) -> Path:
    root = tmp_path / "mini-pkl"
    root.mkdir()
    os.symlink(shared_root("miniimagenet") / "splits", root / "splits")  # the real lists
    shutil.copy(shared_root("miniimagenet") / "SHA256SUMS", root / "SHA256SUMS")
    labels = list(dict.fromkeys(label for _, label in real_rows("train")))
    images = np.stack([solid(i, (84, 84)) for i in range(CLASSES) for _ in range(PER_CLASS)])
    class_dict = {w: list(range(i * PER_CLASS, (i + 1) * PER_CLASS)) for i, w in enumerate(labels)}
    write_pickle(root, "train", images, class_dict)
    return root


def check_colours(store: ImageStore) -> None:
    for label in range(store.num_classes):
        pixels = store.images[store.labels == label].float().mean(dim=(0, 2, 3))
        assert np.allclose(pixels.numpy(), solid(label)[0, 0], atol=4), (label, pixels)


def test_csv_format(csv_root: Path, tmp_path: Path) -> None:
    store = load_miniimagenet("train", csv_root, cache_dir=tmp_path / "cache", source="csv")
    assert store.base_names == list(dict.fromkeys(label for _, label in real_rows("train")))
    assert store.images.shape == (CLASSES * PER_CLASS, 3, 84, 84)
    assert store.class_sizes.tolist() == [PER_CLASS] * CLASSES
    check_colours(store)
    auto = load_miniimagenet("train", csv_root, cache_dir=tmp_path / "cache")
    assert (auto.images == store.images).all()


def test_csv_missing_image(csv_root: Path, tmp_path: Path) -> None:
    victim = real_rows("train")[4][0]
    (csv_root / "images" / victim).unlink()
    with pytest.raises(MissingDataError) as error:
        load_miniimagenet("train", csv_root, cache_dir=tmp_path / "cache")
    assert victim in str(error.value) and str(csv_root / "images") in str(error.value)
    assert "1 of them missing" in str(error.value)


def test_csv_corrupt_image(csv_root: Path, tmp_path: Path) -> None:
    victim = csv_root / "images" / real_rows("train")[0][0]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(CorruptDataError, match=victim.name):
        load_miniimagenet("train", csv_root, cache_dir=tmp_path / "cache")


def test_csv_with_wrong_header(csv_root: Path, tmp_path: Path) -> None:
    (csv_root / "train.csv").write_text("image,class\nx.jpg,n0\n")
    with pytest.raises(CorruptDataError, match="header 'filename,label'"):
        load_miniimagenet("train", csv_root, cache_dir=tmp_path / "cache")


def test_pickle_format_checked_against_the_real_list(pickle_root: Path, tmp_path: Path) -> None:
    store = load_miniimagenet("train", pickle_root, cache_dir=tmp_path / "cache")
    lines = (pickle_root / "splits/train.csv").read_text().splitlines()
    listed = {label for _, label in csv.reader(lines)}
    assert set(store.base_names) <= listed and store.num_classes == CLASSES
    check_colours(store)
    small = load_miniimagenet("train", pickle_root, 32, cache_dir=tmp_path / "cache")
    assert small.images.shape == (CLASSES * PER_CLASS, 3, 32, 32)


def test_pickle_of_another_split_is_caught(pickle_root: Path, tmp_path: Path) -> None:
    val_class = real_rows("val")[0][1]
    images = np.stack([solid(0, (84, 84))] * 2)
    write_pickle(pickle_root, "train", images, {"n01532829": [0], val_class: [1]})
    with pytest.raises(SplitError) as error:
        load_miniimagenet("train", pickle_root, cache_dir=tmp_path / "cache")
    assert val_class in str(error.value) and "another split" in str(error.value)


@pytest.mark.parametrize(
    ("images", "what"),
    [
        (np.zeros((3, 32, 32, 3), np.uint8), "shape (3, 32, 32, 3)"),
        (np.zeros((3, 84, 84), np.uint8), "shape (3, 84, 84)"),
        (np.zeros((3, 84, 84, 3), np.float32), "float32"),
    ],
)
def test_pickle_images_of_wrong_size_or_mode(tmp_path: Path, images: np.ndarray, what: str) -> None:
    write_pickle(tmp_path / "m", "test", images, {"n0": [0, 1, 2]})
    with pytest.raises(CorruptDataError) as error:
        load_miniimagenet("test", tmp_path / "m", cache_dir=tmp_path / "cache")
    assert what in str(error.value) and "uint8 array [N, 84, 84, 3]" in str(error.value)


def test_pickle_class_dict_must_cover_every_image(tmp_path: Path) -> None:
    write_pickle(tmp_path / "m", "val", np.zeros((3, 84, 84, 3), np.uint8), {"n0": [0, 1]})
    with pytest.raises(CorruptDataError, match="1 image\\(s\\) belong to no class"):
        load_miniimagenet("val", tmp_path / "m", cache_dir=tmp_path / "cache")


def test_truncated_and_html_pickles(pickle_root: Path, tmp_path: Path) -> None:
    path = pickle_root / "mini-imagenet-cache-train.pkl"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptDataError, match="truncated or damaged"):
        load_miniimagenet("train", pickle_root, cache_dir=tmp_path / "cache")
    path.write_text("<html><body>Quota exceeded</body></html>")
    with pytest.raises(CorruptDataError, match="HTML page"):
        load_miniimagenet("train", pickle_root, cache_dir=tmp_path / "cache")


def test_a_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    root = tmp_path / "m"
    root.mkdir()
    (root / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps({"image_data": Payload()}))
    with pytest.raises(CorruptDataError, match="not plain data"):
        load_miniimagenet("train", root, cache_dir=tmp_path / "cache")
    assert not marker.exists()


def test_neither_format_present(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as error:
        load_miniimagenet("test", tmp_path / "nothing", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "mini-imagenet-cache-test.pkl" in message and "images/<filename>" in message
    assert "fastmeta data download miniimagenet" in message
