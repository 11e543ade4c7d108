"""Omniglot from tiny archives in the original layout: both layouts, every bad input, caching."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastmeta.datasets import (
    CorruptDataError,
    MissingDataError,
    SplitError,
    load_omniglot,
    read_omniglot,
)
from fastmeta.datasets import omniglot as omniglot_module
from fastmeta.datasets.download import Resource

from .conftest import Served, glyph

ALPHABETS = {
    "images_background": {"Latin": 2, "Greek": 2},
    "images_evaluation": {"Tengwar": 2},
}
DRAWINGS = 3


def build_zips(root: Path) -> dict[str, bytes]:
    """``images_background.zip`` / ``images_evaluation.zip`` with the official layout."""
    root.mkdir(parents=True, exist_ok=True)
    seed = 0
    contents = {}
    for part, alphabets in ALPHABETS.items():
        path = root / f"{part}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{part}/", b"")
            for alphabet, characters in alphabets.items():
                for c in range(1, characters + 1):
                    folder = f"{part}/{alphabet}/character{c:02d}"
                    archive.writestr(folder + "/", b"")
                    for d in range(1, DRAWINGS + 1):
                        seed += 1
                        archive.writestr(f"{folder}/{seed:04d}_{d:02d}.png", glyph(seed))
            archive.writestr(f"{part}/Latin/character01/Thumbs.db", b"not an image")
        contents[path.name] = path.read_bytes()
    return contents


def write_lists(root: Path, lists: dict[str, list[str]]) -> None:
    (root / "splits" / "vinyals").mkdir(parents=True, exist_ok=True)
    for split, lines in lists.items():
        (root / "splits" / "vinyals" / f"{split}.txt").write_text("\n".join(lines) + "\n")


LISTS = {
    "train": [f"Latin/character0{c}/rot{r:03d}" for c in (1, 2) for r in (0, 90, 180, 270)],
    "val": [f"Greek/character0{c}/rot000" for c in (1, 2)],
    "test": ["Tengwar/character01/rot090", "Tengwar/character02/rot270"],
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "omniglot"
    build_zips(folder)
    write_lists(folder, LISTS)
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_loads_the_listed_rotated_classes(root: Path, cache: Path) -> None:
    data = read_omniglot(root, cache_dir=cache)
    assert data.names == [
        "Greek/character01",
        "Greek/character02",
        "Latin/character01",
        "Latin/character02",
        "Tengwar/character01",
        "Tengwar/character02",
    ]
    assert data.images.shape == (18, 1, 28, 28)  # Thumbs.db is not counted
    for split, lines in LISTS.items():
        store = load_omniglot(split, root, cache_dir=cache)
        assert store.num_classes == len(lines)
        if split != "val":
            assert store.class_names == lines
        assert store.images.dtype.is_floating_point is False


def test_extracted_folders_give_the_same_images(root: Path, cache: Path, tmp_path: Path) -> None:
    extracted = tmp_path / "extracted"
    for part in ALPHABETS:
        with zipfile.ZipFile(root / f"{part}.zip") as archive:
            archive.extractall(extracted)
    from_zip = read_omniglot(root, cache_dir=cache)
    from_folders = read_omniglot(extracted, cache_dir=cache)
    assert from_folders.names == from_zip.names
    assert np.array_equal(from_folders.images, from_zip.images)
    assert np.array_equal(from_folders.labels, from_zip.labels)


def test_invert_false_keeps_dark_strokes(root: Path, cache: Path) -> None:
    bright = read_omniglot(root, cache_dir=cache)
    dark = read_omniglot(root, cache_dir=cache, invert=False)
    assert np.array_equal(dark.images, 255 - bright.images)
    assert bright.images.mean() < 30 < 225 < dark.images.mean()


def test_missing_archive_names_file_place_and_command(root: Path, cache: Path) -> None:
    (root / "images_evaluation.zip").unlink()
    with pytest.raises(MissingDataError) as error:
        read_omniglot(root, cache_dir=cache)
    message = str(error.value)
    assert "images_evaluation.zip" in message and str(root) in message
    assert "images_background.zip" not in message.split("Place these files")[1]
    assert f"fastmeta data download omniglot --root {root}" in message
    assert "brendenlake/omniglot" in message


def test_truncated_zip(root: Path, cache: Path) -> None:
    path = root / "images_background.zip"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptDataError, match="truncated or damaged") as error:
        read_omniglot(root, cache_dir=cache)
    assert str(path) in str(error.value) and "Delete it" in str(error.value)
    assert "fastmeta data download omniglot" in str(error.value)


def test_html_page_saved_as_zip(root: Path, cache: Path) -> None:
    path = root / "images_evaluation.zip"
    path.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(CorruptDataError, match="HTML page") as error:
        read_omniglot(root, cache_dir=cache)
    assert "images_evaluation.zip" in str(error.value)


def test_corrupt_png_inside_the_zip_is_named(root: Path, cache: Path) -> None:
    path = root / "images_evaluation.zip"
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("images_evaluation/Tengwar/character01/9999_04.png", glyph(99)[:60])
    with pytest.raises(CorruptDataError, match=r"9999_04\.png: corrupt image"):
        read_omniglot(root, cache_dir=cache)


def test_checksum_manifest_beside_the_files_is_enforced(root: Path, cache: Path) -> None:
    digests = {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()
        for name in ("images_background.zip", "images_evaluation.zip")
    }
    manifest = "".join(f"{d}  {n}\n" for n, d in digests.items())
    (root / "SHA256SUMS").write_text(manifest)
    assert len(read_omniglot(root, cache_dir=cache).names) == 6
    # Same size, different bytes: only the checksum can tell.
    path = root / "images_background.zip"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptDataError, match="does not match its checksum") as error:
        read_omniglot(root, cache_dir=cache / "fresh")
    assert "SHA256SUMS" in str(error.value) and "images_background.zip" in str(error.value)
    assert "Restore the original file" in str(error.value)


def test_split_list_naming_absent_characters(root: Path, cache: Path) -> None:
    write_lists(root, {"test": ["Tengwar/character01/rot000", "Klingon/character07/rot090"]})
    with pytest.raises(SplitError) as error:
        load_omniglot("test", root, cache_dir=cache)
    message = str(error.value)
    assert "Klingon/character07" in message and "test.txt" in message
    assert "same release" in message


def test_malformed_split_line_gives_its_number(root: Path, cache: Path) -> None:
    write_lists(root, {"val": ["Greek/character01/rot000", "Greek/character02/rot045"]})
    with pytest.raises(SplitError, match=r"line 2: 'Greek/character02/rot045'"):
        load_omniglot("val", root, cache_dir=cache)


def test_missing_split_list(root: Path, cache: Path) -> None:
    (root / "splits" / "vinyals" / "val.txt").unlink()
    with pytest.raises(MissingDataError, match=r"splits/vinyals/val\.txt") as error:
        load_omniglot("val", root, cache_dir=cache)
    assert "jakesnell/prototypical-networks" in str(error.value)


def test_maml_split_refuses_too_few_characters(root: Path, cache: Path) -> None:
    with pytest.raises(SplitError, match="only 6 characters"):
        load_omniglot("train", root, cache_dir=cache, scheme="maml")


def test_unknown_split_and_scheme(root: Path, cache: Path) -> None:
    with pytest.raises(SplitError, match="choose one of train, val, test"):
        load_omniglot("dev", root, cache_dir=cache)
    with pytest.raises(SplitError, match="vinyals"):
        load_omniglot("train", root, cache_dir=cache, scheme="lake")
    assert load_omniglot("validation", root, cache_dir=cache).num_classes == 2


def test_cache_follows_the_source_files(
    root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = read_omniglot(root, cache_dir=cache)
    assert len(list(cache.glob("omniglot-*"))) == 1
    # A rebuilt archive (new content, new mtime) is decoded again.
    build_zips(root)
    os.utime(root / "images_background.zip", ns=(1, 1))
    calls = []
    real = omniglot_module.decode_images
    monkeypatch.setattr(
        omniglot_module, "decode_images", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    second = read_omniglot(root, cache_dir=cache)
    assert calls and np.array_equal(first.images, second.images)
    assert len(list(cache.glob("omniglot-*"))) == 2
    read_omniglot(root, cache_dir=cache)
    assert len(calls) == 1


def test_download_true_fetches_missing_archives(
    tmp_path: Path, cache: Path, http_server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = build_zips(tmp_path / "source")
    http_server.files = {f"/{name}": data for name, data in contents.items()}
    archives = tuple(
        Resource(
            name,
            urls=(f"{http_server.url}/{name}",),
            md5=hashlib.md5(data).hexdigest(),
            size=len(data),
        )
        for name, data in contents.items()
    )
    monkeypatch.setattr(omniglot_module, "ARCHIVES", archives)
    empty = tmp_path / "fresh"
    with pytest.raises(MissingDataError):
        read_omniglot(empty, cache_dir=cache)
    data = read_omniglot(empty, cache_dir=cache, download=True, workers=1)
    assert len(data.names) == 6
    assert (empty / "images_background.zip").read_bytes() == contents["images_background.zip"]
