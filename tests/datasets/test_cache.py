"""The decoded-array cache: atomic folders, memory-mapped loads, keys that follow the sources,
damage tolerated, the earlier single-file layout read once and replaced."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import fastmeta.datasets.cache as cache
from fastmeta.datasets.cache import (
    LabelledImages,
    cache_path,
    fingerprint,
    fingerprint_names,
    load_or_build,
)
from fastmeta.datasets.paths import cache_root, data_root


def sample() -> LabelledImages:
    images = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    return LabelledImages(images, np.array([0, 1]), ["a", "ü"], {"skipped": [["x", "why"]]})


def test_round_trip_and_no_temporary_left(tmp_path: Path) -> None:
    calls = []
    key = {"dataset": "demo", "size": 4}
    first = load_or_build(key, lambda: calls.append(1) or sample(), tmp_path)
    second = load_or_build(key, lambda: calls.append(1) or sample(), tmp_path)
    assert calls == [1]
    assert np.array_equal(second.images, first.images) and second.names == ["a", "ü"]
    assert second.meta == {"skipped": [["x", "why"]]} and second.labels.dtype == np.int64
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(key, tmp_path).name]


def test_key_includes_options(tmp_path: Path) -> None:
    assert cache_path({"dataset": "d", "size": 28}, tmp_path) != cache_path(
        {"dataset": "d", "size": 32}, tmp_path
    )
    assert cache_path({"dataset": "d"}, tmp_path).name.startswith("d-")


def test_fingerprint_changes_with_size_or_mtime(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"12345")
    before = fingerprint(tmp_path, [path])
    os.utime(path, ns=(10**18, 10**18))
    touched = fingerprint(tmp_path, [path])
    path.write_bytes(b"123456")
    assert len({before, touched, fingerprint(tmp_path, [path])}) == 3


@pytest.mark.parametrize("damage", ["truncated images", "no info", "other key"])
def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    key = {"dataset": "demo"}
    load_or_build(key, sample, tmp_path)
    folder = cache_path(key, tmp_path)
    if damage == "truncated images":
        images = folder / "images.npy"
        images.write_bytes(images.read_bytes()[:-5])
    elif damage == "no info":
        (folder / "info.json").unlink()
    else:
        info = json.loads((folder / "info.json").read_text())
        (folder / "info.json").write_text(json.dumps({**info, "key": {"dataset": "other"}}))
    with pytest.warns(UserWarning, match="ignoring damaged cache"):
        data = load_or_build(key, sample, tmp_path)
    assert data.names == ["a", "ü"]
    assert load_or_build(key, lambda: pytest.fail("rebuilt twice"), tmp_path).names == ["a", "ü"]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_a_load_maps_the_images_and_writes_never_reach_the_cache(tmp_path: Path) -> None:
    key = {"dataset": "demo"}
    load_or_build(key, sample, tmp_path)
    loaded = load_or_build(key, lambda: pytest.fail("decoded again"), tmp_path)
    assert isinstance(loaded.images, np.memmap) and loaded.images.flags.writeable
    loaded.images[:] = 0  # copy-on-write: this process's pages only
    again = load_or_build(key, lambda: pytest.fail("decoded again"), tmp_path)
    assert np.array_equal(again.images, sample().images)


def test_the_single_file_layout_is_read_once_and_replaced(tmp_path: Path) -> None:
    key = {"dataset": "demo", "size": 4}
    data = sample()
    legacy = cache_path(key, tmp_path).with_suffix(".npz")
    np.savez(  # exactly what the earlier versions wrote
        legacy,
        images=data.images,
        labels=data.labels.astype(np.int64),
        names=np.array(data.names, dtype=np.str_),
        meta=np.array(json.dumps(data.meta)),
        key=np.array(json.dumps(key, sort_keys=True)),
    )
    read = load_or_build(key, lambda: pytest.fail("decoded although cached"), tmp_path)
    assert np.array_equal(read.images, data.images) and read.meta == data.meta
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(key, tmp_path).name]
    mapped = load_or_build(key, lambda: pytest.fail("decoded although cached"), tmp_path)
    assert isinstance(mapped.images, np.memmap) and mapped.names == data.names


def test_a_cache_written_meanwhile_by_another_process_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = {"dataset": "demo"}
    real_rename = os.rename

    def other_process_first(source: Path, target: Path) -> None:
        if not Path(target).exists():  # the other writer renames its folder in between
            other = Path(tempfile.mkdtemp(dir=tmp_path))
            for child in Path(source).iterdir():
                shutil.copy(child, other / child.name)
            real_rename(other, target)
        real_rename(source, target)

    monkeypatch.setattr(cache.os, "rename", other_process_first)
    data = load_or_build(key, sample, tmp_path)
    monkeypatch.undo()
    assert data.names == ["a", "ü"]
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(key, tmp_path).name]
    assert load_or_build(key, lambda: pytest.fail("rebuilt"), tmp_path).names == ["a", "ü"]


def test_fingerprint_names_matches_fingerprint_and_lists_the_missing(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    for name in ("b.jpg", "a.jpg", "a-b.jpg"):
        (tmp_path / "images" / name).write_bytes(name.encode())
    (tmp_path / "list.csv").write_text("x")
    names = ["list.csv", "images/b.jpg", "images/a.jpg", "images/a-b.jpg"]
    digest, missing = fingerprint_names(tmp_path, names)
    assert missing == [] and digest == fingerprint(tmp_path, [tmp_path / n for n in names])
    assert fingerprint_names(tmp_path, list(reversed(names)))[0] == digest
    with_gap, missing = fingerprint_names(tmp_path, [*names, "images/gone.jpg"])
    assert missing == ["images/gone.jpg"] and with_gap == digest
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg"):
        fingerprint(tmp_path, [tmp_path / "images" / "gone.jpg"])


def test_fingerprint_orders_paths_component_by_component(tmp_path: Path) -> None:
    """The digest of existing caches depends on the order: paths sorted as lists of components
    ("a/c" before "a-b", since "a" < "a-b"), which a plain string sort would not give."""
    names = ["a-b", "a/c", "a.b/c", "a/a", "b", "ab/x"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    lines = []
    for name in sorted(names, key=lambda n: n.split("/")):
        stat = os.stat(tmp_path / name)
        lines.append(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
    expected = hashlib.sha256("".join(lines).encode()).hexdigest()
    assert sorted(names) != sorted(names, key=lambda n: n.split("/"))
    assert fingerprint_names(tmp_path, list(reversed(names)))[0] == expected


def test_unwritable_cache_still_returns_data(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="Set FASTMETA_CACHE"):
        data = load_or_build({"dataset": "demo"}, sample, blocker / "cache")
    assert data.images.shape == (2, 1, 4, 4)


def test_locations_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTMETA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    assert data_root("omniglot") == tmp_path / "data" / "omniglot"
    assert data_root("omniglot", "/elsewhere") == Path("/elsewhere")
    assert cache_root() == tmp_path / "cache" and cache_root("/c") == Path("/c")
    monkeypatch.delenv("FASTMETA_DATA")
    monkeypatch.delenv("FASTMETA_CACHE")
    assert data_root("cub") == Path.home() / ".local" / "share" / "fastmeta" / "cub"
    assert cache_root() == Path.home() / ".cache" / "fastmeta"
