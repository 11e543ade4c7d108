"""CIFAR-FS and FC100 from a tiny CIFAR-100 python-pickle release and the REAL split lists."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastmeta.datasets import (
    CorruptDataError,
    MissingDataError,
    SplitError,
    load_cifarfs,
    load_fc100,
    load_split,
)
from fastmeta.datasets import cifar as cifar_module
from fastmeta.datasets.download import Resource

from .conftest import Served, shared_root

SPLITS = ("train", "val", "test")


def real_pairs() -> list[tuple[str, str]]:
    """(superclass, class) for all 100 classes, from the real CIFAR-FS lists."""
    folder = shared_root("cifar-fs") / "splits"
    return [tuple(p) for s in SPLITS for p in json.loads((folder / f"{s}.json").read_text())]


def pixel(fine: int, n: int) -> np.ndarray:
    """A 32x32 RGB image tagged with its class (red) and number (green), as one CIFAR row."""
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0], image[..., 1], image[4:8, 4:8, 2] = fine, n, 255
    return image.transpose(2, 0, 1).reshape(-1)  # CIFAR rows are channel-major


def write_cifar100(folder: Path, bytes_keys: bool = True, row: int = 3072) -> None:
    """cifar-100-python/{train,test,meta}: 2 train and 1 test image for each of the 100 classes."""
    pairs = real_pairs()
    fine_names = sorted(fine for _, fine in pairs)  # CIFAR-100 orders names alphabetically
    coarse_names = sorted({coarse for coarse, _ in pairs})
    coarse_of = {fine: coarse_names.index(coarse) for coarse, fine in pairs}
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    folder.mkdir(parents=True)
    for part, count in (("train", 2), ("test", 1)):
        fine = [f for f in range(100) for _ in range(count)]
        data = np.stack([pixel(f, n)[:row] for f in range(100) for n in range(count)])
        content = {
            key("data"): data,
            key("fine_labels"): fine,
            key("coarse_labels"): [coarse_of[fine_names[f]] for f in fine],
        }
        (folder / part).write_bytes(pickle.dumps(content, protocol=2))
    meta = {
        key("fine_label_names"): [n.encode() if bytes_keys else n for n in fine_names],
        key("coarse_label_names"): coarse_names,
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))


def make_root(base: Path, dataset: str, bytes_keys: bool = True) -> Path:
    root = base / dataset
    write_cifar100(root / "cifar-100-python", bytes_keys)
    os.symlink(shared_root(dataset) / "splits", root / "splits")
    shutil.copy(shared_root(dataset) / "SHA256SUMS", root / "SHA256SUMS")
    return root


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar_fs_splits_are_the_listed_classes(tmp_path: Path, bytes_keys: bool) -> None:
    root = make_root(tmp_path, "cifar-fs", bytes_keys)
    stores = {s: load_cifarfs(s, root, cache_dir=tmp_path / "cache") for s in SPLITS}
    assert [stores[s].num_classes for s in SPLITS] == [64, 16, 20]
    fine_names = sorted(f for _, f in real_pairs())
    for split, store in stores.items():
        listed = [f for _, f in json.loads((root / f"splits/{split}.json").read_text())]
        assert store.base_names == listed
        assert store.class_sizes.tolist() == [3] * len(listed)  # train + test pooled
        assert store.images.shape[1:] == (3, 32, 32)
        for label, name in enumerate(store.base_names):  # each image is its class's
            reds = store.images[store.labels == label, 0, 0, 0]
            assert set(reds.tolist()) == {fine_names.index(name)}
    names = [set(stores[s].base_names) for s in SPLITS]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


def test_fc100_splits_follow_the_superclasses(tmp_path: Path) -> None:
    root = make_root(tmp_path, "fc100")
    stores = {s: load_fc100(s, root, cache_dir=tmp_path / "cache") for s in SPLITS}
    assert [stores[s].num_classes for s in SPLITS] == [60, 20, 20]
    for split, store in stores.items():
        lines = (root / f"splits/{split}.txt").read_text().split()
        assert sorted(store.base_names) == sorted(line.split("/")[1] for line in lines)


def test_tarball_reads_like_the_folder(tmp_path: Path) -> None:
    root = make_root(tmp_path, "cifar-fs")
    folder_store = load_cifarfs("val", root, cache_dir=tmp_path / "cache")
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as archive:
        archive.add(root / "cifar-100-python", arcname="cifar-100-python")
    shutil.rmtree(root / "cifar-100-python")
    tar_store = load_cifarfs("val", root, cache_dir=tmp_path / "cache")
    assert tar_store.base_names == folder_store.base_names
    assert (tar_store.images == folder_store.images).all()


def test_text_lists_and_resizing(tmp_path: Path) -> None:
    root = tmp_path / "cifar-fs"
    write_cifar100(root / "cifar-100-python")
    (root / "splits").mkdir()
    shutil.copy(shared_root("cifar-fs") / "splits" / "test.txt", root / "splits" / "test.txt")
    store = load_split("cifar-fs", "test", root, 84, cache_dir=tmp_path / "cache")
    assert store.num_classes == 20 and store.image_shape == (3, 84, 84)
    assert store.base_names == (root / "splits" / "test.txt").read_text().split()


def test_split_list_naming_an_absent_class(tmp_path: Path) -> None:
    root = tmp_path / "cifar-fs"
    write_cifar100(root / "cifar-100-python")
    (root / "splits").mkdir()
    (root / "splits" / "val.txt").write_text("apple\nunicorn\n")
    with pytest.raises(SplitError) as error:
        load_cifarfs("val", root, cache_dir=tmp_path / "cache")
    assert "unicorn" in str(error.value) and "val.txt" in str(error.value)
    (root / "splits" / "val.txt").unlink()
    (root / "splits" / "val.json").write_text('["fish", "dragons"]')
    with pytest.raises(SplitError, match="superclasses absent from CIFAR-100: dragons"):
        load_fc100("val", root, cache_dir=tmp_path / "cache")


def test_rows_of_the_wrong_size(tmp_path: Path) -> None:
    root = tmp_path / "cifar-fs"
    write_cifar100(root / "cifar-100-python", row=1024)  # one channel only
    with pytest.raises(CorruptDataError) as error:
        load_cifarfs("train", root, cache_dir=tmp_path / "cache")
    assert "row of 3072 uint8 values" in str(error.value) and "(200, 1024)" in str(error.value)


def test_missing_cifar_names_url_and_command(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as error:
        load_fc100("train", tmp_path / "fc100", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "cifar-100-python.tar.gz  from https://www.cs.toronto.edu/~kriz/" in message
    assert f"fastmeta data download fc100 --root {tmp_path / 'fc100'}" in message


def test_download_true_fetches_and_verifies_the_archive(
    tmp_path: Path, http_server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar100(tmp_path / "src" / "cifar-100-python")
    tarball = tmp_path / "src" / "c.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "src" / "cifar-100-python", arcname="cifar-100-python")
    body = tarball.read_bytes()
    http_server.files["/cifar-100-python.tar.gz"] = body
    monkeypatch.setattr(
        cifar_module,
        "ARCHIVE",
        Resource(
            "cifar-100-python.tar.gz",
            urls=(f"{http_server.url}/cifar-100-python.tar.gz",),
            sha256=hashlib.sha256(body).hexdigest(),
        ),
    )
    root = tmp_path / "cifar-fs"
    (root / "splits").mkdir(parents=True)
    shutil.copy(shared_root("cifar-fs") / "splits" / "val.json", root / "splits" / "val.json")
    store = load_cifarfs("val", root, cache_dir=tmp_path / "cache", download=True)
    assert store.num_classes == 16 and (root / "cifar-100-python.tar.gz").is_file()
