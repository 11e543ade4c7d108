"""The command line as a user types it: presets, train, eval with protocol changes, errors."""

from __future__ import annotations

import json

import pytest

from fastmeta.cli import main

TINY = ["train.iterations=20", "train.val_every=10", "train.val_episodes=10", "eval.episodes=20",
        "model.layers=[8]", "sampler.meta_batch=4"]  # fmt: skip


def test_presets_are_listed(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("maml-omniglot-5w1s", "fomaml-omniglot-5w1s", "protonet-omniglot-5w1s",
                 "sine-maml"):  # fmt: skip
        assert name in out


@pytest.mark.parametrize("setting,tuned", [(None, True), ("1", True), ("0", False)])
def test_the_cli_keeps_freed_memory_unless_told_not_to(monkeypatch, capsys, setting, tuned):
    calls = []
    monkeypatch.setattr("fastmeta.train.allocator.keep_freed_memory", lambda: calls.append(1))
    if setting is None:
        monkeypatch.delenv("FASTMETA_KEEP_FREED_MEMORY", raising=False)
    else:
        monkeypatch.setenv("FASTMETA_KEEP_FREED_MEMORY", setting)
    assert main(["presets"]) == 0
    assert calls == ([1] if tuned else [])


def test_train_then_eval_with_another_protocol(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "sine-maml", *TINY, "--out", str(run), "--no-progress"]) == 0
    assert "query loss" in capsys.readouterr().out
    assert main(["eval", str(run), "sampler.test_shots=10", "eval.episodes=30"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["shots"] == 10 and report["episodes"] == 30
    assert len((run / "eval_episodes.csv").read_text().splitlines()) == 31
    pytest.importorskip("matplotlib")
    assert (run / "curves.png").exists() and (run / "adapted_curves.png").exists()


def test_eval_refuses_to_change_training_settings(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "sine-maml", *TINY, "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "model.layers=[4]"]) == 2
    assert "cannot change after training" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "sine-maml", "algorithm.inner_rate=1"], "valid settings of algorithm"),
        (["train", "no-such-preset"], "no preset named 'no-such-preset'"),
        (["train", "sine-maml", "optimizer.name=adamw"], "choose one of adam, sgd"),
        (["train"], "name a preset"),
        (["eval", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_requests_say_what_to_change(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
