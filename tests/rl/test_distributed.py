"""Rollouts split across two real processes (gloo, CPU, float64): a MAML-TRPO meta-step (its
gradient, Fisher products on a subsample of tasks and line search all summed by all-reduce)
over a meta-batch shared by two processes equals one process's over the whole batch, and so
does the gathered evaluation; ProMP's (Adam, the supervised trainer's gradient all-reduce) and
RL²'s too, in the slow suite (``-m slow``: two more processes importing torch's optimizers).

The damping is 0.1 here: with rllab's 1e-5 the conjugate-gradient solve of this tiny problem is
so ill-conditioned that merely summing the batch's objective in two parts instead of one (in a
single process) moves the step's weights by 3e-4, so no split could match to 1e-9."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from fastmeta.config import apply_overrides
from fastmeta.rl.build import build_algorithm, build_env, build_policy, build_streams
from fastmeta.rl.evaluation import evaluate
from fastmeta.rl.presets import load_config
from fastmeta.rl.sharding import Share
from fastmeta.train.distributed import Distributed, distributed_session

TINY = [
    "env.horizon=6",
    "policy.hidden=[6]",
    "sampling.meta_batch=5",
    "sampling.episodes=3",
    "algorithm.fisher_fraction=0.5",
    "algorithm.cg_damping=0.1",
    "eval.tasks=3",
    "eval.episodes=2",
    "eval.steps=1",
    "eval.batch_tasks=1",
]
FAST = ("maml-trpo-navigation",)
SLOW = ("promp-navigation", "rl2-navigation")


def one_meta_step(preset: str, d: Distributed) -> dict:
    config = apply_overrides(load_config(preset), TINY)
    torch.manual_seed(0)
    env = build_env(config, torch.device("cpu"))
    policy = build_policy(config, env)
    algorithm = build_algorithm(config, policy, env)
    streams = build_streams(config)
    share = Share.of(config.sampling.meta_batch, d)
    metrics = algorithm.meta_step(share.local(streams.train.batch(0)), 7, share)
    returns = evaluate(algorithm, streams.test, 3, config, torch.device("cpu"), d)
    return {"weights": policy.state_dict(), "metrics": metrics, "returns": returns}


def _worker(rank: int, port: int, out: str, presets: tuple[str, ...]) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    with distributed_session(timeout_s=120) as d:
        results = {p: one_meta_step(p, d) for p in presets}
    if rank == 0:
        torch.save(results, out)


def two_processes_equal_one(presets: tuple[str, ...], out: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(
        _worker, args=(port, str(out), presets), nprocs=2, join=True, start_method="spawn"
    )
    two = torch.load(out, weights_only=False)
    for preset in presets:
        one = one_meta_step(preset, Distributed())
        for name, weight in one["weights"].items():
            torch.testing.assert_close(
                two[preset]["weights"][name], weight, rtol=1e-9, atol=1e-11, msg=f"{preset}: {name}"
            )
        for key, value in one["metrics"].items():
            assert abs(two[preset]["metrics"][key] - value) < 1e-8 * max(1, abs(value)), key
        torch.testing.assert_close(two[preset]["returns"], one["returns"], rtol=1e-12, atol=0)


def test_two_processes_take_the_maml_trpo_step_of_one(tmp_path: Path, float64):
    two_processes_equal_one(FAST, tmp_path / "two.pt")


@pytest.mark.slow
def test_two_processes_take_the_promp_and_rl2_steps_of_one(tmp_path: Path, float64):
    two_processes_equal_one(SLOW, tmp_path / "two.pt")
