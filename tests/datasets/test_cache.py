"""The decoded-array cache: atomic files, keys that follow the sources, damage tolerated."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fastmeta.datasets.cache import LabelledImages, cache_path, fingerprint, load_or_build
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


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    key = {"dataset": "demo"}
    cache_path(key, tmp_path).parent.mkdir(parents=True, exist_ok=True)
    cache_path(key, tmp_path).write_bytes(b"PK\3\4 truncated")
    with pytest.warns(UserWarning, match="ignoring damaged cache file"):
        data = load_or_build(key, sample, tmp_path)
    assert data.names == ["a", "ü"]
    assert load_or_build(key, lambda: pytest.fail("rebuilt twice"), tmp_path).names == ["a", "ü"]


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
