"""Pictures of runs: several runs' validation accuracy against minutes of training."""

import json

import pytest

from fastmeta.cli import main
from fastmeta.run.directory import RunDirectory
from fastmeta.train.plots import validation_against_time


def fake_run(path, rows, report=None):
    """A run directory holding only what the pictures read: metrics.jsonl (and report.json)."""
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if report is not None:
        (path / "report.json").write_text(json.dumps(report))
    return path


VAL = [
    {"step": 10, "phase": "train", "loss": 1.0, "accuracy": 0.3},
    {"step": 10, "phase": "val", "accuracy": 0.40, "ci95": 0.02, "train_seconds": 60.0},
    {"step": 20, "phase": "val", "accuracy": 0.45, "ci95": 0.03, "train_seconds": 150.0},
]


def test_validation_rows_are_read_against_minutes(tmp_path):
    run = RunDirectory(fake_run(tmp_path / "a", VAL))
    assert validation_against_time(run) == ([1.0, 2.5], [0.40, 0.45], [0.02, 0.03])


def test_a_run_without_a_validation_clock_is_refused(tmp_path):
    run = RunDirectory(fake_run(tmp_path / "a", VAL[:1]))
    with pytest.raises(ValueError, match=r"train\.val_every > 0"):
        validation_against_time(run)


def test_the_command_draws_several_runs_and_keeps_an_existing_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    report = {"accuracy": {"mean": 0.47, "ci95": 0.01}, "train_seconds": 150.0}
    a = fake_run(tmp_path / "a", VAL, report)
    b = fake_run(tmp_path / "b", VAL)
    picture = tmp_path / "budget.png"
    assert main(["plot", str(a), str(b), "--against-time", str(picture)]) == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    drawn = picture.read_bytes()
    assert main(["plot", str(a), "--against-time", str(picture)]) == 2
    assert "exists; choose another --against-time name" in capsys.readouterr().err
    assert picture.read_bytes() == drawn
    assert main(["plot", str(a), str(b)]) == 2
    assert "add --against-time PNG" in capsys.readouterr().err
    assert main(["plot", str(tmp_path), "--against-time", str(tmp_path / "c.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err
