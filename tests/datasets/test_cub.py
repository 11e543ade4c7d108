"""CUB-200-2011 from a tiny image tree (or .tgz) named after the REAL split lists' classes."""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastmeta.datasets import CorruptDataError, MissingDataError, SplitError, load_cub

from .conftest import encode, shared_root

SPLITS = ("train", "val", "test")


def real_lists() -> dict[str, list[str]]:
    folder = shared_root("cub") / "splits"
    return {s: json.loads((folder / f"{s}.json").read_text()) for s in SPLITS}


def build_tree(root: Path) -> list[str]:
    """CUB_200_2011/images/<class>/<file>.jpg (2 per class) plus images.txt and classes.txt."""
    classes = sorted(c for names in real_lists().values() for c in names)
    images = root / "CUB_200_2011" / "images"
    listing = []
    for index, name in enumerate(classes):
        (images / name).mkdir(parents=True)
        for n in range(2):
            pixels = np.full((18, 24, 3), (index, 40 * n, 200), np.uint8)
            data = encode(pixels, "JPEG")
            if index == 0 and n == 1:  # CUB has a few greyscale JPEGs
                data = encode(np.full((18, 24), 90, np.uint8), "JPEG")
            relative = f"{name}/{name.split('.')[1]}_{n:04d}.jpg"
            (images / relative).write_bytes(data)
            listing.append(relative)
    (root / "CUB_200_2011" / "images.txt").write_text(
        "".join(f"{i} {r}\n" for i, r in enumerate(listing, start=1))
    )
    (root / "CUB_200_2011" / "classes.txt").write_text(
        "".join(f"{i} {c}\n" for i, c in enumerate(classes, start=1))
    )
    os.symlink(shared_root("cub") / "splits", root / "splits")
    return listing


@pytest.fixture
def root(tmp_path: Path) -> Path:
    build_tree(tmp_path / "cub")
    return tmp_path / "cub"


def test_tree_splits_are_the_listed_classes(root: Path, tmp_path: Path) -> None:
    stores = {s: load_cub(s, root, cache_dir=tmp_path / "cache") for s in SPLITS}
    lists = real_lists()
    assert [stores[s].num_classes for s in SPLITS] == [100, 50, 50]
    for split, store in stores.items():
        assert store.base_names == lists[split]
        assert store.class_sizes.tolist() == [2] * len(lists[split])
        assert store.image_shape == (3, 84, 84)
    everything = sorted(c for names in lists.values() for c in names)
    for label, name in enumerate(stores["train"].base_names):
        reds = stores["train"].images[stores["train"].labels == label, 0].float().mean((1, 2))
        expected = everything.index(name)
        assert any(abs(r - expected) < 4 for r in reds.tolist()), (name, reds)
    grey = stores["train"].images[stores["train"].labels == 0][1]  # converted to RGB
    assert (grey[0] == grey[1]).all() and (grey[1] == grey[2]).all()


def test_tgz_reads_like_the_tree(root: Path, tmp_path: Path) -> None:
    tree = load_cub("val", root, cache_dir=tmp_path / "cache")
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "CUB_200_2011.tgz", "w:gz") as archive:
        archive.add(root / "CUB_200_2011", arcname="CUB_200_2011")
        (tmp_path / "attributes.txt").write_text("1 has_bill_shape::curved\n")
        archive.add(tmp_path / "attributes.txt", arcname="attributes.txt")
    os.symlink(shared_root("cub") / "splits", packed / "splits")
    from_tgz = load_cub("val", packed, cache_dir=tmp_path / "cache", workers=2)
    assert from_tgz.base_names == tree.base_names
    assert (from_tgz.images == tree.images).all() and (from_tgz.labels == tree.labels).all()


def test_images_txt_names_a_missing_file(root: Path, tmp_path: Path) -> None:
    victim = next((root / "CUB_200_2011" / "images").glob("*/*.jpg"))
    victim.unlink()
    with pytest.raises(MissingDataError) as error:
        load_cub("test", root, cache_dir=tmp_path / "cache")
    assert victim.name in str(error.value) and "images.txt" in str(error.value)


def test_corrupt_jpeg_is_named(root: Path, tmp_path: Path) -> None:
    victim = next((root / "CUB_200_2011" / "images").glob("*/*.jpg"))
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(CorruptDataError, match=re.escape(victim.name)):
        load_cub("train", root, cache_dir=tmp_path / "cache")


def test_truncated_tgz(root: Path, tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "CUB_200_2011.tgz", "w:gz") as archive:
        archive.add(root / "CUB_200_2011", arcname="CUB_200_2011")
    data = (packed / "CUB_200_2011.tgz").read_bytes()
    (packed / "CUB_200_2011.tgz").write_bytes(data[: len(data) // 2])
    os.symlink(shared_root("cub") / "splits", packed / "splits")
    with pytest.raises(CorruptDataError, match="truncated or damaged") as error:
        load_cub("train", packed, cache_dir=tmp_path / "cache", workers=2)
    assert "fastmeta data download cub" in str(error.value)


def test_split_list_naming_absent_class(root: Path, tmp_path: Path) -> None:
    (root / "splits").unlink()
    (root / "splits").mkdir()
    (root / "splits" / "val.json").write_text('["002.Laysan_Albatross", "999.Dodo"]')
    with pytest.raises(SplitError, match=r"999\.Dodo"):
        load_cub("val", root, cache_dir=tmp_path / "cache")


def test_nothing_there(tmp_path: Path) -> None:
    root = tmp_path / "cub"
    root.mkdir()
    os.symlink(shared_root("cub") / "splits", root / "splits")
    with pytest.raises(MissingDataError) as error:
        load_cub("train", root, cache_dir=tmp_path / "cache")
    assert "CUB_200_2011.tgz  from https://data.caltech.edu/" in str(error.value)
    assert f"fastmeta data download cub --root {root}" in str(error.value)
