"""A minimal meta-training loop over an indexed stream of task batches."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from tqdm import tqdm

from fastmeta.algorithms.base import MetaLearner
from fastmeta.tasks import TaskBatch


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; training stopped at ``step``."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"meta-loss is {loss} at step {step}; lower the learning rates or clip gradients"
        )
        self.step = step


def meta_train(
    algorithm: MetaLearner,
    batch_at: Callable[[int], TaskBatch],
    optimizer: torch.optim.Optimizer,
    iterations: int,
    *,
    start: int = 0,
    chunk_size: int | None = None,
    progress: bool = True,
    log_every: int = 100,
) -> list[dict[str, float]]:
    """Run ``iterations`` meta-steps on ``batch_at(i)``; returns a log row every ``log_every``.

    Raises :class:`NonFiniteLossError` when the loss stops being finite.
    """
    history: list[dict[str, float]] = []
    bar = tqdm(range(start, start + iterations), disable=not progress, desc="meta-train")
    started = time.perf_counter()
    for step in bar:
        batch = batch_at(step)
        optimizer.zero_grad(set_to_none=True)
        out = algorithm.accumulate_gradients(batch, chunk_size)
        loss = float(out.loss)
        if not math.isfinite(loss):
            raise NonFiniteLossError(step, loss)
        optimizer.step()
        if (step + 1) % log_every == 0 or step + 1 == start + iterations:
            elapsed = time.perf_counter() - started
            row = {
                "step": step + 1,
                "loss": loss,
                "tasks_per_s": (step + 1 - start) * len(batch) / elapsed,
            }
            if out.accuracy is not None:
                row["accuracy"] = float(out.accuracy.mean())
            history.append(row)
            bar.set_postfix(loss=f"{loss:.3f}", tasks_s=f"{row['tasks_per_s']:.0f}")
    return history
