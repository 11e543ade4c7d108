"""Every registered dataset trains, evaluates, adapts and exports through the command line, on a
tiny copy of its real on-disk format (the real split lists from $FASTMETA_DATA where it has
them); mini-ImageNet also on its real 60,000 images."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fastmeta.cli import main
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.datasets.registry import DATASETS
from tests.datasets.conftest import encode, shared_root
from tests.datasets.test_cifar import make_root
from tests.datasets.test_cub import build_tree
from tests.datasets.test_miniimagenet import CLASSES, real_rows, solid
from tests.datasets.test_omniglot_files import LISTS, build_zips, write_lists
from tests.datasets.test_tieredimagenet import images_for, real_classes, write_release

TINY = ["algorithm.name=protonet", "model.hidden=8", "sampler.ways=2", "sampler.shots=1",
        "sampler.queries=1", "sampler.meta_batch=2", "train.iterations=2", "train.val_every=1",
        "train.val_episodes=2", "train.checkpoint_every=1", "train.log_every=1",
        "sampler.test_ways=2", "sampler.test_shots=1", "sampler.test_queries=1",
        "eval.episodes=4", "eval.batch_size=2"]  # fmt: skip


def omniglot(base: Path) -> list[str]:
    root = base / "omniglot"
    build_zips(root)
    write_lists(root, LISTS)
    return [f"data.root={root}"]


def miniimagenet(base: Path) -> list[str]:
    root = base / "miniimagenet"
    (root / "images").mkdir(parents=True)
    for split in ("train", "val", "test"):
        rows = real_rows(split)
        with open(root / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([("filename", "label"), *rows])
        labels = list(dict.fromkeys(label for _, label in rows))
        assert len(labels) == CLASSES
        for filename, label in rows:
            (root / "images" / filename).write_bytes(encode(solid(labels.index(label)), "JPEG"))
    return [f"data.root={root}", "data.image_size=32"]


def tieredimagenet(base: Path) -> list[str]:
    root = base / "tieredimagenet"
    for split in ("train", "val", "test"):
        names, general, general_of = real_classes(split)
        write_release(root, split, images_for(len(names), size=84), names, general, general_of)
    return [f"data.root={root}", "data.image_size=32"]


def cifar(name: str) -> Callable[[Path], list[str]]:
    def build(base: Path) -> list[str]:
        return [f"data.root={make_root(base, name)}"]

    return build


def cub(base: Path) -> list[str]:
    root = base / "cub"
    build_tree(root)
    return [f"data.root={root}", "data.image_size=32"]


def folder(base: Path) -> list[str]:
    root = write_pattern_folder(base / "patterns", classes=8, images=4, size=16)
    return [f"data.root={root}", "data.image_size=16", "data.fractions=[0.5,0.25,0.25]"]


FIXTURES: dict[str, Callable[[Path], list[str]]] = {
    "omniglot": omniglot,
    "miniimagenet": miniimagenet,
    "tieredimagenet": tieredimagenet,
    "cifar-fs": cifar("cifar-fs"),
    "fc100": cifar("fc100"),
    "cub": cub,
    "folder": folder,
}


def test_every_registered_dataset_has_a_fixture_here() -> None:
    assert set(FIXTURES) | {"sine"} == set(DATASETS)


@pytest.mark.protonet_export
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_train_eval_adapt_and_export_on_the_real_format(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_root(name if name != "folder" else "omniglot")  # skip without $FASTMETA_DATA
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    data = FIXTURES[name](tmp_path)
    run = tmp_path / "run"
    argv = ["train", "protonet-omniglot-5w1s", f"data.dataset={name}", *data, *TINY]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0
    assert "accuracy:" in capsys.readouterr().out
    report = json.loads((run / "report.json").read_text())
    assert report["dataset"] == name and report["iterations"] == 2 and report["ways"] == 2
    assert main(["eval", str(run), "eval.episodes=2", "--name", "again"]) == 0
    assert json.loads((run / "again.json").read_text())["episodes"] == 2
    channels = 1 if name == "omniglot" else 3
    classes = write_pattern_folder(tmp_path / "new", classes=3, images=3, size=20, query=1)
    support, query = classes / "support", classes / "query"
    assert main(["adapt", str(run), "--support", str(support), "--query", str(query),
                 "--out", str(tmp_path / "predictions.csv")]) == 0  # fmt: skip
    rows = list(csv.reader((tmp_path / "predictions.csv").open()))
    assert rows[0][:2] == ["file", "predicted_class"] and len(rows) == 1 + 3
    exported = tmp_path / "classifier.pt2"
    assert main(["export", str(run), "--support", str(support), "--out", str(exported)]) == 0
    program = torch.export.load(exported).module()
    size = 28 if name == "omniglot" else 16 if name == "folder" else 32
    probabilities = program(torch.rand(2, channels, size, size))
    torch.testing.assert_close(probabilities.sum(1), torch.ones(2))


def test_sine_trains_and_evaluates_through_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["train.iterations=2", "train.val_every=1", "train.val_episodes=4", "eval.episodes=4",
            "model.layers=[8]", "sampler.meta_batch=2"]  # fmt: skip
    assert main(["train", "sine-maml", *tiny, "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "report.json").read_text())["dataset"] == "sine"
    assert main(["eval", str(run), "eval.episodes=2", "--name", "again"]) == 0


@pytest.mark.skipif(not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA (real images)")
def test_miniimagenet_trains_on_its_real_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real 84x84 images of all 100 classes decode (once, into the run's cold cache) and a
    short ProtoNets run trains and tests on them through the command line."""
    images = shared_root("miniimagenet") / "images"
    if not images.is_dir() or shutil.disk_usage(tmp_path).free < 2**30:
        pytest.skip("the real mini-ImageNet images (and 1 GiB free for their cache) are needed")
    run = tmp_path / "run"
    argv = ["train", "protonet-omniglot-5w1s", "data.dataset=miniimagenet", *TINY,
            "sampler.ways=5", "sampler.test_ways=5", "eval.episodes=10",
            "eval.batch_size=5"]  # fmt: skip
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["dataset"] == "miniimagenet" and report["ways"] == 5
    assert "accuracy" in report and "accuracy:" in capsys.readouterr().out
