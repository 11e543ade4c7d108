"""MAML sine-wave regression end to end: meta-train, evaluate after 1/5/10 steps, plot.

Defaults are the MAML paper's (Finn et al. 2017, sec. 5.1): MLP 1-40-40-1, K=10 support points
in training, inner lr 0.01 with 1 step, meta-batch 25, Adam 1e-3, 70,000 iterations; evaluation
on 600 fixed tasks with K=5 support points (the paper's Table 2 setting) and 100 query points.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from fastmeta.algorithms import MAML
from fastmeta.datasets.sine import SineTasks, sine_curve
from fastmeta.models import MLP
from fastmeta.tasks import TaskBatch
from fastmeta.train.evaluate import Summary, evaluate_episodes, summarize
from fastmeta.train.loop import meta_train


@dataclass(frozen=True)
class SineConfig:
    """Settings of a sine-regression run (override any with ``key=value``)."""

    iterations: int = 70_000
    meta_batch: int = 25
    shots: int = 10
    inner_lr: float = 0.01
    inner_steps: int = 1
    first_order: bool = False
    meta_lr: float = 1e-3
    seed: int = 0
    eval_tasks: int = 600
    eval_shots: int = 5
    eval_queries: int = 100
    eval_steps: tuple[int, ...] = (1, 5, 10)
    eval_seed: int = 12345
    strategy: Literal["auto", "vmap", "loop"] = "auto"
    plot_tasks: int = 3


@dataclass(frozen=True)
class SineResult:
    config: SineConfig
    mse: dict[int, Summary]
    train_seconds: float
    history: list[dict[str, float]]


def evaluation_batches(config: SineConfig, batch_size: int = 100) -> list[TaskBatch]:
    """The fixed evaluation tasks (same for every run with the same ``eval_seed``)."""
    tasks = SineTasks(shots=config.eval_shots, queries=config.eval_queries, seed=config.eval_seed)
    sizes = [batch_size] * (config.eval_tasks // batch_size)
    if config.eval_tasks % batch_size:
        sizes.append(config.eval_tasks % batch_size)
    return [tasks.batch(i, size) for i, size in enumerate(sizes)]


def evaluate_sine(maml: MAML, config: SineConfig) -> dict[int, Summary]:
    """Query MSE on the fixed evaluation tasks after each number of steps in ``eval_steps``."""
    batches = evaluation_batches(config)
    return {
        steps: summarize(evaluate_episodes(lambda b, k=steps: maml.evaluate(b, k), batches)["loss"])
        for steps in config.eval_steps
    }


def run_sine(config: SineConfig, out_dir: Path | None = None, progress: bool = True) -> SineResult:
    """Meta-train MAML on sine tasks, evaluate it, and write results into ``out_dir``."""
    torch.manual_seed(config.seed)
    model = MLP(1, [40, 40], 1)
    maml = MAML(
        model, lr=config.inner_lr, steps=config.inner_steps, first_order=config.first_order,
        strategy=config.strategy,
    )  # fmt: skip
    optimizer = torch.optim.Adam(maml.parameters(), lr=config.meta_lr)
    tasks = SineTasks(shots=config.shots, queries=config.shots, seed=config.seed)
    started = time.perf_counter()
    history = meta_train(
        maml, lambda i: tasks.batch(i, config.meta_batch), optimizer, config.iterations,
        progress=progress, log_every=max(1, config.iterations // 100),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    result = SineResult(config, evaluate_sine(maml, config), seconds, history)
    if out_dir is not None:
        write_outputs(result, maml, out_dir)
    return result


def write_outputs(result: SineResult, maml: MAML, out_dir: Path) -> None:
    """results.json, the model weights, and (with matplotlib) adapted curves as PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "config": asdict(result.config),
        "train_seconds": result.train_seconds,
        "mse": {str(k): asdict(v) for k, v in result.mse.items()},
        "history": result.history,
    }
    _atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2))
    tmp = out_dir / "model.pt.tmp"
    torch.save(maml.model.state_dict(), tmp)
    os.replace(tmp, out_dir / "model.pt")
    with contextlib.suppress(ImportError):  # matplotlib is the optional "plot" extra
        plot_adapted_curves(maml, result.config, out_dir / "adapted_curves.png")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def plot_adapted_curves(maml: MAML, config: SineConfig, path: Path) -> None:
    """Ground truth, support points and the model after 0, 1 and 10 steps for a few test tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = config.plot_tasks
    tasks = SineTasks(shots=config.eval_shots, queries=1, seed=config.eval_seed)
    support = tasks.batch(0, n)
    amplitude, phase = tasks.parameters(0, n)
    grid = torch.linspace(-5, 5, 200).reshape(1, -1, 1).expand(n, -1, -1)
    dense = TaskBatch(support.support_x, support.support_y, grid, torch.zeros_like(grid))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False)
    for i, ax in enumerate(axes[0]):
        x = grid[i, :, 0]
        ax.plot(x, sine_curve(float(amplitude[i]), float(phase[i]), x), "k", label="ground truth")
        for steps, style in ((0, ":"), (1, "--"), (10, "-")):
            ax.plot(
                x, maml.evaluate(dense, steps).predictions[i, :, 0], style, label=f"{steps} steps"
            )
        ax.scatter(support.support_x[i, :, 0], support.support_y[i, :, 0], c="r", label="support")
        ax.set_title(f"task {i}: K={config.eval_shots}")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(result: SineResult) -> str:
    """A human-readable summary of the run."""
    lines = [
        f"meta-trained {result.config.iterations} iterations in {result.train_seconds:.1f} s",
        f"test MSE on {result.config.eval_tasks} tasks, K={result.config.eval_shots} support, "
        f"{result.config.eval_queries} query points (mean +- 95% CI; median):",
    ]
    for steps, summary in result.mse.items():
        lines.append(f"  {steps:>3} steps: {summary.format()}  (median {summary.median:.3f})")
    return "\n".join(lines)
