"""``fastmeta train --data FOLDER --backbone ...``: a frozen network, no meta-training, scored
by heads; and ``train.iterations=0`` underneath it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fastmeta.cli import main
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.train.trainer import Trainer

SMALL = ["data.fractions=[0.34,0.33,0.33]", "sampler.ways=3", "sampler.shots=2",
         "sampler.queries=2", "eval.episodes=4", "eval.batch_size=4"]  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on one folder: its network is the backbone."""
    root = tmp_path_factory.mktemp("backbone")
    folder = write_pattern_folder(root / "a", classes=9, images=6, size=12, seed=0)
    argv = ["train", "--data", str(folder), "data.image_size=12", "model.hidden=8",
            "model.downsample=stride", "train.iterations=2", "train.val_every=0",
            *SMALL]  # fmt: skip
    assert main([*argv, "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def test_a_run_s_network_is_used_frozen_on_another_folder(source, tmp_path, capsys):
    other = write_pattern_folder(tmp_path / "b", classes=9, images=6, size=20, seed=1)
    run = tmp_path / "frozen"
    argv = ["train", "--data", str(other), "--backbone", str(source), *SMALL]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0
    said = capsys.readouterr()
    assert "no meta-training (train.iterations=0)" in said.out + said.err
    report = json.loads((run / "report.json").read_text())
    assert report["iterations"] == 0 and "no meta-training" in report["checkpoint"]
    assert set(report["heads"]) == {"prototypes", "logistic"}
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000000.pt"]
    frozen = Trainer.resume(run).algorithm.encoder.state_dict()
    trained = Trainer.resume(source).algorithm.encoder.state_dict()
    assert frozen.keys() == trained.keys()
    assert all(torch.equal(frozen[k], trained[k]) for k in frozen)
    config = (run / "config.yaml").read_text()
    assert "image_size: 12" in config and "hidden: 8" in config and "freeze: all" in config


def test_backbone_mistakes_are_one_line(source, tmp_path, capsys):
    assert main(["train", "--backbone", str(source)]) == 2
    assert "--backbone goes with --data FOLDER" in capsys.readouterr().err
    folder = write_pattern_folder(tmp_path / "b", classes=9, images=6, size=12)
    assert main(["train", "--data", str(folder), "--backbone", "resnet18"]) == 2
    assert "give timm:<architecture>, hf:<model id or config>, or a fastmeta run" in (
        capsys.readouterr().err
    )
