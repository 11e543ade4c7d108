"""Metrics of a run: CSV and JSON lines in the run directory, TensorBoard when installed."""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any

from fastmeta.run.directory import RunDirectory

COLUMNS = ("step", "phase", "loss", "accuracy", "ci95", "tasks_per_s", "lr", "train_seconds")
"""The columns of ``metrics.csv`` (training rows leave ``ci95`` and ``train_seconds`` empty,
validation rows ``tasks_per_s`` and ``lr``; regression leaves ``accuracy`` empty)."""


class MetricsLog:
    """Appends rows ``{"step": int, "phase": str, name: value...}`` to ``metrics.jsonl`` and
    ``metrics.csv``. On resume, rows after the checkpoint's step are dropped first, so the log of
    an interrupted-and-resumed run equals an uninterrupted one's."""

    def __init__(self, run: RunDirectory, resume_step: int | None = None) -> None:
        self.jsonl = run.metrics_jsonl
        self.csv = run.metrics_csv
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):  # a line cut by a kill
                    row = json.loads(line)
                    if row["step"] <= resume_step:
                        self.rows.append(row)
        self._rewrite()
        self._tensorboard = _tensorboard_writer(run.tensorboard)

    def log(self, step: int, phase: str, **values: float) -> None:
        row = {"step": step, "phase": phase, **values}
        self.rows.append(row)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()
        if self._tensorboard is not None:
            for name, value in values.items():
                self._tensorboard.add_scalar(f"{phase}/{name}", value, step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()

    def _rewrite(self) -> None:
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        columns: list[str] = list(COLUMNS)  # complete from the first row on
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)


def _tensorboard_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))
