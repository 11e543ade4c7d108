"""Distributed meta-training with two real processes (gloo, CPU, float64).

Every registered algorithm's meta-gradient over a meta-batch split across the processes equals
one process's over the whole batch; gathered evaluation equals one process's bit for bit;
trainer runs on two processes end where one process ends, resume on two and on one process;
only rank 0 touches the run directory; a killed or frozen rank stops the other with an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from fastmeta.algorithms.registry import algorithm_specs
from fastmeta.config import apply_overrides
from fastmeta.presets import load_config
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch
from fastmeta.train.distributed import Distributed, distributed_session
from fastmeta.train.evaluate import evaluate_episodes
from fastmeta.train.sharding import (
    average_gradients,
    gather_output,
    gather_scores,
    local_batch,
    share,
)
from fastmeta.train.trainer import Trainer
from tests.interrupt import Interrupted, interrupt_at

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
IMAGE = (1, 28, 28)
CLASSES = 20
TIGHT = {"rtol": 1e-9, "atol": 1e-12}


# ------------------------------------------------------------------------------ launching
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(worker: Callable[..., None], *args: Any) -> None:
    """Run ``worker(distributed, *args)`` in ``WORLD`` spawned processes joined by gloo."""
    mp.start_processes(
        _enter, args=(free_port(), worker, args), nprocs=WORLD, join=True, start_method="spawn"
    )


def _enter(rank: int, port: int, worker: Callable[..., None], args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    with distributed_session(timeout_s=60) as d:
        worker(d, *args)


@contextlib.contextmanager
def float64() -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


# ------------------------------------------------------------------------------ a tiny task source
class Glyphs:
    """3-way 2-shot episodes of random 28x28 images; episode ``i`` depends only on (seed, i)."""

    ways, shots, queries = 3, 2, 2

    def __init__(self, batch_size: int, seed: int = 0) -> None:
        self.batch_size = batch_size
        self.seed = seed

    def episodes(self, start: int, count: int) -> TaskBatch:
        tasks = [self._episode(i) for i in range(start, start + count)]
        return TaskBatch(*(torch.stack(parts) for parts in zip(*tasks, strict=True)))

    def _episode(self, index: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(1_000 * self.seed + index)
        per_class = self.shots + self.queries
        prototypes = torch.randn(self.ways, 1, *IMAGE, generator=g)
        x = prototypes + 0.5 * torch.randn(self.ways, per_class, *IMAGE, generator=g)
        y = torch.arange(self.ways).unsqueeze(1).expand(self.ways, per_class)
        classes = torch.randperm(CLASSES, generator=g)[: self.ways]
        s = self.shots
        return (
            x[:, :s].reshape(-1, *IMAGE), y[:, :s].reshape(-1),
            x[:, s:].reshape(-1, *IMAGE), y[:, s:].reshape(-1), classes,
        )  # fmt: skip

    def batch(self, index: int) -> TaskBatch:
        return self.episodes(index * self.batch_size, self.batch_size)

    def evaluation(self, num_episodes: int) -> Iterator[TaskBatch]:
        for start in range(0, num_episodes, self.batch_size):
            yield self.episodes(start, min(self.batch_size, num_episodes - start))


# Reptile's default inner Adam divides each gradient by its own size, which turns the conv
# biases' gradients (zero up to rounding under BatchNorm) into +-lr noise; plain SGD compares.
OPTIONS = {"reptile": ["algorithm.options.inner_optimizer=sgd"]}


def build(name: str, meta_batch: int) -> Any:
    """Algorithm ``name`` on a 4-filter Conv4, initialised from seed 0."""
    config = apply_overrides(RunConfig(), [
        f"algorithm.name={name}", "algorithm.inner_lr=0.1", "model.name=conv4", "model.hidden=4",
        f"sampler.ways={Glyphs.ways}", f"sampler.shots={Glyphs.shots}",
        f"sampler.queries={Glyphs.queries}", f"sampler.meta_batch={meta_batch}",
        *OPTIONS.get(name, []),
    ])  # fmt: skip
    torch.manual_seed(0)
    return build_algorithm(config, build_model(config, IMAGE), CLASSES)


# (algorithm, meta-batch size): 6 splits 3 + 3; 5 splits 3 + 2
CASES = [(name, 6) for name in algorithm_specs()] + [("maml", 5)]
EVAL_EPISODES = (5, 2)  # three batches of 2, 2, 1 (two to rank 0); one batch (rank 1 idle)


def sharded_worker(d: Distributed, out: Path) -> None:
    results = {}
    for name, meta_batch in CASES:
        algorithm, source = build(name, meta_batch), Glyphs(meta_batch)
        algorithm.start_step(1, 10)
        batch = local_batch(source, 1, d)
        local = algorithm.accumulate_gradients(batch, None)
        average_gradients(algorithm.parameters(), d, batch.num_tasks / meta_batch)
        output = gather_output(local, d, meta_batch)
        algorithm.eval()
        scores = {
            n: gather_scores(algorithm.evaluate, Glyphs(2, seed=1), n, d) for n in EVAL_EPISODES
        }
        results[name, meta_batch] = {
            "grads": {n: p.grad for n, p in algorithm.named_parameters()},
            "task_losses": output.task_losses, "predictions": output.predictions,
            "accuracy": output.accuracy, "scores": scores,
        }  # fmt: skip
    torch.save(results, out / f"rank{d.rank}.pt")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("sharded")
    launch(sharded_worker, out)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def test_shares_cover_the_batch_once_in_order():
    for total in range(2, 12):
        for world in range(1, total + 1):
            spans = [share(total, r, world) for r in range(world)]
            assert [s for s, _ in spans] == [sum(c for _, c in spans[:r]) for r in range(world)]
            assert sum(c for _, c in spans) == total
            assert max(c for _, c in spans) - min(c for _, c in spans) <= 1


def one_process(name: str, meta_batch: int, chunk_size: int | None) -> tuple[Any, Any]:
    with float64():
        algorithm = build(name, meta_batch)
        algorithm.start_step(1, 10)
        return algorithm, algorithm.accumulate_gradients(Glyphs(meta_batch).batch(1), chunk_size)


def grads_close(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return all(
        (x.grad is None and y.grad is None) or torch.allclose(x.grad, y.grad, **TIGHT)
        for x, y in pairs
    )


@pytest.mark.parametrize(("name", "meta_batch"), CASES)
def test_meta_gradient_on_two_processes_equals_one_process_over_the_whole_batch(
    sharded, name, meta_batch
):
    """Per-task algorithms match one process on the whole batch. An algorithm whose training
    loss couples the tasks of a batch (the transfer baselines normalise BatchNorm over all its
    images) matches one process accumulating the same shares as chunks, as DDP's per-device
    BatchNorm would."""
    algorithm, expected = one_process(name, meta_batch, None)
    by_shares, by_shares_output = one_process(name, meta_batch, -(-meta_batch // WORLD))
    if not grads_close(algorithm, by_shares):
        algorithm, expected = by_shares, by_shares_output
    mine = [rank[name, meta_batch] for rank in sharded]
    for rank in mine:
        for param_name, param in algorithm.named_parameters():
            got = rank["grads"][param_name]
            if param.grad is None:
                assert got is None, param_name
                continue
            torch.testing.assert_close(got, param.grad, **TIGHT, msg=param_name)
        torch.testing.assert_close(rank["task_losses"], expected.task_losses, **TIGHT)
        torch.testing.assert_close(rank["predictions"], expected.predictions, **TIGHT)
        torch.testing.assert_close(rank["accuracy"], expected.accuracy, **TIGHT)
    for param_name in mine[0]["grads"]:  # every rank holds the very same gradient
        a, b = mine[0]["grads"][param_name], mine[1]["grads"][param_name]
        assert (a is None and b is None) or torch.equal(a, b), param_name


@pytest.mark.parametrize(("name", "meta_batch"), CASES)
def test_evaluation_gathered_from_two_processes_equals_one_process_exactly(
    sharded, name, meta_batch
):
    with float64():
        algorithm = build(name, meta_batch)
        algorithm.eval()
        for episodes in EVAL_EPISODES:
            expected = evaluate_episodes(algorithm.evaluate, Glyphs(2, seed=1).evaluation(episodes))
            for rank in sharded:
                got = rank[name, meta_batch]["scores"][episodes]
                assert got.keys() == expected.keys()
                for metric in expected:
                    assert got[metric].dtype == expected[metric].dtype
                    assert torch.equal(got[metric], expected[metric]), (metric, episodes)


# ------------------------------------------------------------------------------ the trainer
SINE = [
    "train.iterations=12", "train.val_every=4", "train.val_episodes=10",
    "train.checkpoint_every=4", "train.log_every=2", "eval.episodes=10", "eval.batch_size=4",
    "eval.inner_steps=[1,3]", "model.layers=[16,16]", "sampler.meta_batch=4",
]  # fmt: skip
INTERRUPT_AT = 6


def trainer_worker(d: Distributed, root: Path) -> None:
    """Run A uninterrupted; run B interrupted, copied to C (for a 1-process resume), resumed."""
    home = root if d.is_main else root / "rank1"  # rank 1 must never write (or read) its path
    config = apply_overrides(load_config("sine-maml"), SINE)
    Trainer.create(config, home / "a", progress_bar=False).fit()
    interrupted = Trainer.create(config, home / "b", progress_bar=False)
    interrupt_at(interrupted, INTERRUPT_AT)
    with contextlib.suppress(Interrupted):
        interrupted.fit()
    d.on_main(lambda: shutil.copytree(home / "b", home / "c"), "copying the run")
    Trainer.resume(home / "b", progress_bar=False).fit()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    launch(trainer_worker, root)
    return root


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return Trainer.resume(run_dir, progress_bar=False).algorithm.state_dict()


def metric_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timings = ("tasks_per_s", "train_seconds")
    return [{k: v for k, v in row.items() if k not in timings} for row in rows]


def assert_rows_close(got: list[dict], expected: list[dict]) -> None:
    assert [(r["step"], r["phase"], sorted(r)) for r in got] == [
        (r["step"], r["phase"], sorted(r)) for r in expected
    ]
    for a, b in zip(got, expected, strict=True):
        for key in a.keys() - {"phase"}:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (a["step"], key)


def test_two_processes_train_like_one_and_resume_on_two_or_on_one(two_process_runs, tmp_path):
    root = two_process_runs
    assert not (root / "rank1").exists(), "rank 1 wrote to the run directory"
    config = apply_overrides(load_config("sine-maml"), SINE)
    with float64():
        single = Trainer.create(config, tmp_path / "single", progress_bar=False).fit()
        resumed_on_one = Trainer.resume(root / "c", progress_bar=False)
        assert resumed_on_one.progress.step == INTERRUPT_AT // 4 * 4
        with pytest.warns(RuntimeWarning, match="trained on 2 process"):
            resumed_on_one.fit()
        weights = {run: final_weights(root / run) for run in ("a", "b", "c")}
        weights["single"] = final_weights(tmp_path / "single")

    for name, value in weights["a"].items():
        torch.testing.assert_close(value, weights["single"][name], **TIGHT, msg=name)
        assert torch.equal(weights["b"][name], value), f"2-process resume changed {name}"
        torch.testing.assert_close(weights["c"][name], value, **TIGHT, msg=name)
    assert_rows_close(metric_rows(root / "a"), metric_rows(tmp_path / "single"))
    assert metric_rows(root / "b") == metric_rows(root / "a")
    assert_rows_close(metric_rows(root / "c"), metric_rows(root / "a"))

    report = json.loads((root / "a" / "report.json").read_text())
    assert report["processes"] == 2 and single["processes"] == 1
    assert report["episodes"] == single["episodes"] == 10
    for key in ("loss", "by_inner_steps"):
        assert _close(report[key], single[key]), key


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------------ a rank that fails
LONG_RUN = [
    "train.iterations=1000000", "train.val_every=0", "train.checkpoint_every=1000000",
    "train.log_every=1", "model.layers=[8]", "sampler.meta_batch=2",
]  # fmt: skip


@pytest.mark.parametrize(("failure", "timeout_s"), [("killed", 60), ("frozen", 10)])
def test_a_rank_that_dies_or_freezes_stops_the_other_with_an_error(tmp_path, failure, timeout_s):
    port = free_port()
    processes = []
    for rank in range(WORLD):
        env = dict(
            os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
        )  # fmt: skip
        command = [
            sys.executable, "-m", "fastmeta", "train", "sine-maml", *LONG_RUN, "--no-progress",
            "--out", str(tmp_path / "run"), "--dist-timeout", str(timeout_s),
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    survivor, victim = processes
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.monotonic() + 90
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert survivor.poll() is None and time.monotonic() < deadline, survivor.stderr.read()
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL if failure == "killed" else signal.SIGSTOP)
        started = time.monotonic()
        # killed: the connection drops at once; frozen: the collective times out after 10 s
        _, stderr = survivor.communicate(timeout=timeout_s + 30 if failure == "frozen" else 30)
        waited = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    assert survivor.returncode == 1, stderr
    assert "process 0 of 2 stopped while" in stderr, stderr
    assert "--resume" in stderr
    if failure == "frozen":
        assert waited >= timeout_s and f"within {timeout_s} s" in stderr
