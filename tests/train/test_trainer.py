"""The trainer: exact resume (in process and after kill -9), NaN handling, refusal of a
mismatched checkpoint, deterministic evaluation, and the run directory's contents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fastmeta.config import apply_overrides
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.presets import load_config
from fastmeta.run.checkpoint import CheckpointMismatchError, list_checkpoints
from fastmeta.train.guard import NonFiniteLossError
from fastmeta.train.trainer import Trainer
from tests.interrupt import Interrupted, interrupt_at

SMALL = [
    "train.iterations=60", "train.val_every=20", "train.val_episodes=20",
    "train.checkpoint_every=10", "train.log_every=5", "eval.episodes=40", "eval.batch_size=20",
    "model.layers=[16,16]", "model.init=torch", "sampler.meta_batch=4",
]  # fmt: skip


def small_config(*overrides: str):
    return apply_overrides(load_config("sine-maml"), [*SMALL, *overrides])


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    trainer = Trainer.resume(run_dir, progress_bar=False)
    return trainer.algorithm.state_dict()


def comparable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "train_seconds"}


def test_resume_after_interruption_ends_exactly_like_an_uninterrupted_run(tmp_path):
    config = small_config()
    reference = Trainer.create(config, tmp_path / "a", progress_bar=False).fit()

    interrupted = Trainer.create(config, tmp_path / "b", progress_bar=False)
    stop_at = int(torch.randint(11, 59, (1,)))
    interrupt_at(interrupted, stop_at)
    with pytest.raises(Interrupted):
        interrupted.fit()
    resumed = Trainer.resume(tmp_path / "b", progress_bar=False)
    assert resumed.progress.step == stop_at // 10 * 10
    report = resumed.fit()

    assert comparable(report) == comparable(reference)
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    rows = lambda d: [  # noqa: E731
        {k: v for k, v in json.loads(line).items() if k not in ("tasks_per_s", "train_seconds")}
        for line in (d / "metrics.jsonl").read_text().splitlines()
    ]
    assert rows(tmp_path / "a") == rows(tmp_path / "b")


def test_kill_9_mid_run_then_resume_matches_uninterrupted(tmp_path):
    overrides = [*SMALL, "train.iterations=150", "train.checkpoint_every=7"]
    command = [sys.executable, "-m", "fastmeta", "train", "sine-maml", *overrides, "--no-progress"]
    subprocess.run([*command, "--out", str(tmp_path / "a")], check=True, capture_output=True)

    run_b = tmp_path / "b"
    process = subprocess.Popen([*command, "--out", str(run_b)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list_checkpoints(run_b)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_b / "report.json").exists(), "the run finished before it was killed"
    done = subprocess.run(
        [sys.executable, "-m", "fastmeta", "train", "--resume", str(run_b), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    a, b = final_state(tmp_path / "a"), final_state(run_b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    report = lambda d: comparable(json.loads((d / "report.json").read_text()))  # noqa: E731
    assert report(tmp_path / "a") == report(run_b)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer.create(small_config(), tmp_path, progress_bar=False)
    original = trainer.train_step

    def poisoned_step():
        if trainer.progress.step == 25:
            with torch.no_grad():
                trainer.algorithm.model.head.bias.fill_(float("nan"))
        return original()

    trainer.train_step = poisoned_step  # type: ignore[method-assign]
    with pytest.raises(NonFiniteLossError, match="at step 26"):
        trainer.fit()
    resumed = Trainer.resume(tmp_path, progress_bar=False)
    assert resumed.progress.step == 20
    assert all(torch.isfinite(p).all() for p in resumed.algorithm.parameters())


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    Trainer.create(small_config("train.iterations=10"), tmp_path, progress_bar=False).fit()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_file.read_text().replace("- 16\n  - 16", "- 8\n  - 8"))
    with pytest.raises(CheckpointMismatchError, match=r"model\.body\.0\.weight"):
        Trainer.resume(tmp_path, progress_bar=False)


def test_new_run_refuses_an_existing_run_directory(tmp_path):
    Trainer.create(small_config(), tmp_path, progress_bar=False)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer.create(small_config(), tmp_path, progress_bar=False)


def test_evaluation_is_deterministic_and_independent_of_batching(tmp_path):
    trainer = Trainer.create(small_config("train.iterations=20"), tmp_path, progress_bar=False)
    trainer.fit()
    first = trainer.evaluate(trainer.sources.test, 30)["loss"]
    again = trainer.evaluate(trainer.sources.test, 30)["loss"]
    rebatched = replace(trainer.sources.test, batch_size=7)
    assert torch.equal(first, again)
    torch.testing.assert_close(trainer.evaluate(rebatched, 30)["loss"], first)


def test_run_directory_holds_config_metrics_episodes_and_report(tmp_path):
    report = Trainer.create(small_config(), tmp_path, progress_bar=False).fit()
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "metrics.csv", "metrics.jsonl", "checkpoints", "report.json",
            "report_episodes.csv"} <= names  # fmt: skip
    episodes = (tmp_path / "report_episodes.csv").read_text().splitlines()
    assert episodes[0] == "episode,loss" and len(episodes) == 41
    assert report["episodes"] == 40 and report["shots"] == 5
    assert set(report["by_inner_steps"]) == {"1", "5", "10"}
    assert len(list_checkpoints(tmp_path)) == 3


def test_early_stopping_ends_after_patience_validations_without_improvement(tmp_path):
    scores = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])  # validation loss only grows after step 10
    trainer = Trainer.create(
        small_config("train.early_stop_patience=2", "train.val_every=10"), tmp_path,
        progress_bar=False,
    )  # fmt: skip

    def fake_evaluate(source, episodes, inner_steps=None):
        if source is trainer.sources.val:
            return {"loss": torch.full((episodes,), next(scores))}
        return Trainer.evaluate(trainer, source, episodes, inner_steps)

    trainer.evaluate = fake_evaluate  # type: ignore[method-assign]
    report = trainer.fit()
    assert trainer.progress.step == 30 and trainer.progress.best_step == 10
    assert report["checkpoint"] == "best on validation (step 10)"


class TickingClock:
    """``time.perf_counter`` stand-in that advances one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_time_limit_stops_training_saves_the_step_and_survives_resume(tmp_path, monkeypatch):
    monkeypatch.setattr("fastmeta.train.trainer.time", TickingClock())
    config = small_config("train.time_limit_minutes=0.25", "train.val_every=0")
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    stopped = report["iterations"]
    assert 0 < stopped < config.train.iterations
    assert report["train_seconds"] >= 15 and report["time_limit_minutes"] == 0.25
    assert report["checkpoint"] == f"final (step {stopped})"
    assert f"step-{stopped:08d}" in {p.stem for p in list_checkpoints(tmp_path)}
    resumed = Trainer.resume(tmp_path, progress_bar=False)
    assert resumed.fit()["iterations"] == stopped  # the budget is spent: no further step


def test_training_time_counts_meta_steps_not_validation(tmp_path, monkeypatch):
    clock = TickingClock()  # one second per reading: two readings per meta-step
    monkeypatch.setattr("fastmeta.train.trainer.time", clock)
    trainer = Trainer.create(
        small_config("train.iterations=20", "train.val_every=5"), tmp_path, progress_bar=False
    )  # fmt: skip
    evaluate = trainer.evaluate

    def slow_evaluate(*args, **kwargs):
        clock.now += 100.0  # validation "takes" 100 s of wall time
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", slow_evaluate)
    report = trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [(r["step"], r["train_seconds"]) for r in rows if r["phase"] == "val"]
    assert val == [(5, 5.0), (10, 10.0), (15, 15.0), (20, 20.0)]
    assert report["train_seconds"] == 20.0


def test_target_accuracy_stops_at_the_first_validation_reaching_it_and_survives_resume(
    tmp_path, monkeypatch
):
    folder = write_pattern_folder(tmp_path / "folder", classes=9, images=6, size=12)
    config = apply_overrides(load_config("protonet-folder"), [
        f"data.root={folder}", "data.image_size=12", "data.fractions=[0.34,0.33,0.33]",
        "model.hidden=8", "model.downsample=stride", "sampler.ways=3", "sampler.shots=2",
        "sampler.queries=2", "train.iterations=50", "train.val_every=5", "train.val_episodes=4",
        "train.target_accuracy=0.9", "eval.episodes=4",
    ])  # fmt: skip
    accuracies = iter([0.5, 0.95, 0.8, 0.99])
    trainer = Trainer.create(config, tmp_path / "run", progress_bar=False)

    def fake_evaluate(source, episodes, inner_steps=None):
        if source is trainer.sources.val:
            return {"accuracy": torch.full((episodes,), next(accuracies)),
                    "loss": torch.zeros(episodes)}  # fmt: skip
        return Trainer.evaluate(trainer, source, episodes, inner_steps)

    monkeypatch.setattr(trainer, "evaluate", fake_evaluate)
    report = trainer.fit()
    assert report["iterations"] == 10 and report["checkpoint"] == "best on validation (step 10)"
    assert report["target_accuracy"] == 0.9
    assert f"step-{10:08d}" in {p.stem for p in list_checkpoints(tmp_path / "run")}
    resumed = Trainer.resume(tmp_path / "run", progress_bar=False)
    assert resumed.fit()["iterations"] == 10  # the target is reached: no further step


def test_target_accuracy_is_a_fraction_and_needs_an_accuracy(tmp_path):
    with pytest.raises(ValueError, match=r"write 0\.98 for 98 %"):
        small_config("train.target_accuracy=98")
    with pytest.raises(ValueError, match="sine is regression, validated by its loss"):
        Trainer.create(small_config("train.target_accuracy=0.5"), tmp_path, progress_bar=False)


def test_time_limit_must_be_positive():
    with pytest.raises(ValueError, match="time_limit_minutes must be a positive number"):
        small_config("train.time_limit_minutes=0")


def test_gradient_clipping_bounds_the_update(tmp_path):
    trainer = Trainer.create(
        small_config("optimizer.grad_clip=1e-3", "optimizer.name=sgd", "optimizer.lr=1.0"),
        tmp_path, progress_bar=False,
    )  # fmt: skip
    before = [p.detach().clone() for p in trainer.algorithm.parameters()]
    trainer.train_step()
    change = torch.cat([(p.detach() - b).flatten() for p, b in
                        zip(trainer.algorithm.parameters(), before, strict=True)])  # fmt: skip
    assert change.norm() == pytest.approx(1e-3, rel=1e-4)
