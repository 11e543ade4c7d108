"""A user's class-per-folder images: any format, size and mode in; skipped files reported."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastmeta.datasets import MissingDataError, SplitError, load_image_folder, read_image_folder
from fastmeta.datasets.folder import split_classes

from .conftest import colour, encode


def save(path: Path, image: Image.Image, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "mydata"
    rgb = Image.fromarray(colour(1, 40))
    save(folder / "cats" / "a.jpg", rgb, "JPEG")
    save(folder / "cats" / "b.png", rgb.convert("RGBA").resize((50, 20)), "PNG")
    save(folder / "cats" / "nested" / "c.bmp", rgb.convert("L"), "BMP")
    save(folder / "dogs" / "d.gif", rgb.convert("P"), "GIF")
    save(folder / "dogs" / "e.png", rgb.convert("1").resize((300, 200)), "PNG")
    save(folder / "dogs" / "f.tiff", Image.fromarray(colour(2, 16)).convert("CMYK"), "TIFF")
    (folder / "dogs" / "notes.txt").write_text("vet on Tuesday")
    (folder / "dogs" / "broken.jpg").write_bytes(encode(colour(3, 64), "JPEG")[:150])
    (folder / "dogs" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "empty_class").mkdir()
    (folder / "README.md").write_text("my images")
    return folder


def test_reads_every_usable_image_and_reports_the_rest(root: Path, tmp_path: Path) -> None:
    data, report = read_image_folder(root, 32, cache_dir=tmp_path / "cache")
    assert data.names == ["cats", "dogs"]
    assert data.images.shape == (6, 3, 32, 32) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [3, 3]
    skipped = dict(report.skipped)
    assert skipped["README.md"] == "not inside a class folder"
    assert skipped["dogs/notes.txt"] == "not an image (format not recognised)"
    assert skipped["dogs/broken.jpg"].startswith("corrupt image")
    assert ".DS_Store" not in str(report.skipped)  # hidden files are ignored silently
    assert report.empty_classes == ["empty_class"]
    assert "class folder empty_class/ has no usable image" in report.summary()


def test_report_survives_the_cache(root: Path, tmp_path: Path) -> None:
    _, first = read_image_folder(root, 32, cache_dir=tmp_path / "cache")
    _, second = read_image_folder(root, 32, cache_dir=tmp_path / "cache")
    assert second == first and len(list((tmp_path / "cache").glob("folder-*"))) == 1


def test_grey_mode_and_warning(root: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="skipped dogs/notes.txt: not an image"):
        store = load_image_folder(root, image_size=20, mode="L", cache_dir=tmp_path / "cache")
    assert store.image_shape == (1, 20, 20) and store.num_classes == 2
    with pytest.raises(ValueError, match="image mode must be one of"):
        load_image_folder(root, mode="CMYK", cache_dir=tmp_path / "cache")


def test_class_split_by_fractions(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    for c in range(10):
        save(folder / f"class{c}" / "x.png", Image.fromarray(colour(c, 8)), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: no warning
        stores = {
            s: load_image_folder(folder, s, 8, fractions=(0.6, 0.2, 0.2), cache_dir=tmp_path / "c")
            for s in ("train", "val", "test", "all")
        }
    assert [stores[s].num_classes for s in ("train", "val", "test", "all")] == [6, 2, 2, 10]
    parts = [set(stores[s].base_names) for s in ("train", "val", "test")]
    assert set().union(*parts) == set(stores["all"].base_names) and sum(map(len, parts)) == 10
    again = load_image_folder(folder, "val", 8, fractions=(0.6, 0.2, 0.2), cache_dir=tmp_path / "c")
    assert again.base_names == stores["val"].base_names
    other = split_classes(sorted(stores["all"].base_names), (0.6, 0.2, 0.2), seed=5)
    assert other["val"] != stores["val"].base_names or other["test"] != stores["test"].base_names


def test_too_few_classes_and_bad_fractions() -> None:
    with pytest.raises(SplitError, match="too few to give every split a class"):
        split_classes(["a", "b"], (0.64, 0.16, 0.2), seed=0)
    with pytest.raises(SplitError, match="summing to 1"):
        split_classes(["a", "b", "c"], (0.5, 0.5, 0.5), seed=0)


def test_no_usable_class_folder(tmp_path: Path) -> None:
    (tmp_path / "d" / "only").mkdir(parents=True)
    (tmp_path / "d" / "only" / "x.txt").write_text("no images here")
    with pytest.raises(MissingDataError) as error:
        read_image_folder(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert "<class name>/<image files>" in str(error.value)
    assert "skipped only/x.txt: not an image" in str(error.value)
    with pytest.raises(MissingDataError, match="is not a folder"):
        read_image_folder(tmp_path / "missing", cache_dir=tmp_path / "cache")


def test_resize_mode_is_applied_and_part_of_the_cache_key(tmp_path: Path) -> None:
    folder = tmp_path / "wide"
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 20:40] = 255  # white centre square between black thirds
    for name in ("a", "b"):
        save(folder / name / "x.png", Image.fromarray(pixels), "PNG")
    cache = tmp_path / "cache"
    cropped, _ = read_image_folder(folder, 8, cache_dir=cache)  # the default: centre crop
    padded, _ = read_image_folder(folder, 8, resize="pad", cache_dir=cache)
    squashed, _ = read_image_folder(folder, 8, resize="squash", cache_dir=cache)
    assert (cropped.images == 255).all()
    assert (padded.images[:, :, :2] == 0).all() and (padded.images[:, :, 3:5, 3:5] > 240).all()
    assert (squashed.images[:, :, :, 0] < 15).all() and (squashed.images[:, :, :, 4] > 240).all()
    assert len(list(cache.glob("folder-*"))) == 3
