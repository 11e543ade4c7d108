"""Exact resume: a tiny navigation run stopped in the middle of a meta-step and resumed from
its last checkpoint ends with the weights, test report and metrics of an uninterrupted run
(MAML-TRPO, ProMP with its Adam state, RL² with its recurrent policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fastmeta.config import apply_overrides
from fastmeta.rl.config import RLConfig
from fastmeta.rl.presets import load_config
from fastmeta.rl.trainer import RLTrainer

TINY = [
    "env.horizon=8",
    "sampling.meta_batch=3",
    "sampling.episodes=2",
    "train.iterations=4",
    "train.checkpoint_every=1",
    "eval.tasks=2",
    "eval.episodes=2",
    "eval.steps=1",
    "eval.batch_tasks=2",
]


def tiny(preset: str) -> RLConfig:
    hidden = [] if preset.startswith("rl2") else ["policy.hidden=[8]"]
    return apply_overrides(load_config(preset), [*TINY, *hidden])


class Killed(Exception):
    """Stands for the process dying in the middle of a meta-step."""


def train_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


@pytest.mark.parametrize("preset", ["maml-trpo-navigation", "promp-navigation", "rl2-navigation"])
def test_a_run_killed_mid_step_and_resumed_equals_an_uninterrupted_run(preset, tmp_path):
    config = tiny(preset)
    whole = RLTrainer.create(config, tmp_path / "whole", progress_bar=False)
    report = whole.fit()

    broken = RLTrainer.create(config, tmp_path / "broken", progress_bar=False)
    step = broken.algorithm.meta_step
    calls = []

    def dies_in_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        return step(*args, **kwargs)

    broken.algorithm.meta_step = dies_in_the_third  # type: ignore[method-assign]
    with pytest.raises(Killed):
        broken.fit()
    resumed = RLTrainer.resume(tmp_path / "broken", progress_bar=False)
    assert resumed.progress.iteration == 2
    resumed_report = resumed.fit()

    for (name, a), b in zip(
        whole.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert resumed_report["returns"] == report["returns"]
    assert train_rows(tmp_path / "broken") == train_rows(tmp_path / "whole")
