"""``fastmeta data download|info|verify|prepare`` and the ``load_split`` entry point."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from fastmeta.datasets import DATASETS, DatasetError, Resource, dataset_info, load_split
from fastmeta.datasets.commands import add_data_commands

from .conftest import Served, shared_root
from .test_cifar import make_root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="fastmeta")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", *argv])
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_lists_files_and_presence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", "omniglot", "--root", str(shared_root("omniglot")))
    assert code == 0 and "1 x 28 x 28 uint8" in out
    assert "present  images_background.zip  [https://raw.githubusercontent.com/brendenlake" in out
    assert "present  splits/vinyals/test.txt" in out


def test_verify_real_omniglot_against_its_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "omniglot", "--root", str(shared_root("omniglot")))
    assert code == 0, out
    assert "ok   images_background.zip" in out and "ok   splits/vinyals/val.txt" in out
    assert "ok   one-shot-classification/all_runs.zip  (from SHA256SUMS)" in out
    assert "BAD" not in out


def test_verify_flags_a_damaged_copy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = tmp_path / "omniglot"
    shutil.copytree(shared_root("omniglot") / "splits", root / "splits")
    shutil.copy(shared_root("omniglot") / "SHA256SUMS", root / "SHA256SUMS")
    with open(root / "splits/vinyals/train.txt", "a") as handle:
        handle.write("Latin/character99/rot000\n")
    code, out, _ = run(capsys, "verify", "omniglot", "--root", str(root))
    assert code == 1
    assert "BAD  splits/vinyals/train.txt" in out and "ok   splits/vinyals/test.txt" in out
    assert "delete them and run `fastmeta data download omniglot`" in out


def test_download_accepts_the_rebuilt_local_zips(capsys: pytest.CaptureFixture[str]) -> None:
    """shared/ holds faithful rebuilds whose checksums differ from the official md5: no fetch."""
    code, out, err = run(capsys, "download", "omniglot", "--root", str(shared_root("omniglot")))
    assert code == 0, err
    assert out.count("ok  ") == 5


def test_download_fetches_what_it_can_and_explains_the_rest(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    http_server: Served,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/n01532829/a.txt", "inside")
    body = buffer.getvalue()
    http_server.files["/images.zip"] = body
    resources = (
        Resource(
            "images.zip", (f"{http_server.url}/images.zip",), hashlib.sha256(body).hexdigest()
        ),
        Resource("mini-imagenet-cache-train.pkl", source="no stable public URL"),
    )
    info = dataclasses.replace(DATASETS["miniimagenet"], resources=resources)
    monkeypatch.setitem(DATASETS, "miniimagenet", info)
    root = tmp_path / "mini"
    code, out, _ = run(capsys, "download", "mini-imagenet", "--root", str(root), "--extract")
    assert code == 0
    assert f"ok  {root / 'images.zip'}" in out and "extracted 1 files" in out
    assert (root / "images/n01532829/a.txt").read_text() == "inside"
    assert "mini-imagenet-cache-train.pkl" in out and "no stable public URL" in out


def test_download_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "download", "imagenet-21k")
    assert code == 1 and "unknown dataset 'imagenet-21k': choose one of omniglot" in err
    code, _, err = run(capsys, "download", "folder", "--root", str(tmp_path))
    assert code == 1 and "nothing to download" in err


def test_prepare_decodes_every_split(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = make_root(tmp_path, "cifar-fs")
    argv = ("prepare", "cifar-fs", "--root", str(root), "--cache-dir", str(tmp_path / "cache"))
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "train    64 classes     192 images  3x32x32" in out
    assert "test     20 classes      60 images  3x32x32" in out and "loaded in" in out


def test_load_split_names_and_defaults(real: SimpleNamespace) -> None:
    assert dataset_info("Mini-ImageNet").name == "miniimagenet"
    assert dataset_info("cub200").image_size == 84
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'"):
        load_split("mnist", "train")
    with pytest.raises(DatasetError, match="needs root="):
        load_split("folder", "all")
    store = load_split("omniglot", "test", real.root, cache_dir=real.cache, scheme="vinyals")
    assert store.num_classes == 1692 and store.image_shape == (1, 28, 28)
