"""Testing a run on another dataset's test split (``fastmeta eval RUN --on DATA``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fastmeta.cli import main
from fastmeta.config import apply_overrides
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.presets import load_config
from fastmeta.run.build import build_sources
from fastmeta.train.trainer import Trainer
from tests.train.test_test_heads import FRACTIONS, SMALL, trained


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("transfer")
    folder = write_pattern_folder(root / "a", classes=9, images=6, size=12, seed=0)
    return trained(folder, root / "run").run.path


def test_the_other_data_s_episodes_are_those_of_a_run_configured_on_it(run, tmp_path):
    other = write_pattern_folder(tmp_path / "b", classes=9, images=6, size=12, seed=1)
    trainer = Trainer.resume(run)
    trainer.use_test_data(["data.dataset=folder", f"data.root={other}", FRACTIONS])
    config = apply_overrides(load_config("protonet-folder"), [f"data.root={other}", *SMALL])
    reference = build_sources(config, torch.device("cpu")).test
    for got, want in zip(trainer.sources.test.evaluation(6), reference.evaluation(6), strict=True):
        assert torch.equal(got.support_x, want.support_x)
        assert torch.equal(got.query_y, want.query_y)


def test_eval_on_a_folder_writes_a_report_naming_both_datasets(run, tmp_path, capsys):
    other = write_pattern_folder(tmp_path / "b", classes=9, images=6, size=12, seed=1)
    assert main(["eval", str(run), "--on", str(other), "--final", "--name", "on-b",
                 FRACTIONS, "eval.heads=[prototypes]"]) == 0  # fmt: skip
    report = json.loads((run / "on-b.json").read_text())
    assert report["trained_on"] == "folder" and report["dataset"] == f"folder {other}"
    assert report["heads"]["prototypes"]["mean"] == pytest.approx(report["accuracy"]["mean"])
    assert f"on folder {other} (test split)" in capsys.readouterr().out


def test_data_that_gives_other_shapes_or_no_data_is_refused(run, tmp_path, capsys):
    other = write_pattern_folder(tmp_path / "b", classes=9, images=6, size=12, seed=1)
    trainer = Trainer.resume(run)
    with pytest.raises(ValueError, match=r"gives examples of shape \[1, 12, 12\], the run was"):
        trainer.use_test_data(
            ["data.dataset=folder", f"data.root={other}", FRACTIONS, "data.channels=1"]
        )
    assert main(["eval", str(run), "data.root=x"]) == 2
    assert "describe the data given with --on DATA" in capsys.readouterr().err
    assert main(["eval", str(run), "--on", str(tmp_path / "none")]) == 2
    assert "no dataset of that name" in capsys.readouterr().err
