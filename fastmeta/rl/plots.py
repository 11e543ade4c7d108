"""Pictures of meta-RL runs (the optional ``plot`` extra): the test return against the number
of adaptation steps (mean and 95 % CI, several runs side by side, as in the MAML paper's
Figure 5) and the training return against training time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastmeta.pictures import pyplot, save_figure
from fastmeta.run.directory import RunDirectory


def plot_runs(runs: Sequence[Path], report: str = "report", out: Path | None = None) -> list[Path]:
    """``adaptation.png`` (runs with a ``<report>.json``) and ``training.png`` (runs with
    metrics) in ``out`` (default: the first run's directory); the paths written."""
    folder = out or Path(runs[0])
    folder.mkdir(parents=True, exist_ok=True)
    directories = [RunDirectory(r) for r in runs]
    written = []
    reports = [
        (d, json.loads(d.report(report).read_text()))
        for d in directories
        if d.report(report).is_file()
    ]
    if reports:
        written.append(plot_adaptation([r for _, r in reports], folder / "adaptation.png"))
    logged = [d for d in directories if d.metrics_jsonl.is_file()]
    if logged:
        written.append(plot_training(logged, folder / "training.png"))
    return written


def plot_adaptation(reports: Sequence[dict[str, Any]], path: Path) -> Path:
    """Mean test return (95 % CI) after 0, 1, ... adaptation steps, one line per report."""
    fig, ax = pyplot().subplots(figsize=(5, 3.6))
    for report in reports:
        steps = sorted(report["returns"], key=int)
        means = [report["returns"][k]["mean"] for k in steps]
        cis = [report["returns"][k]["ci95"] for k in steps]
        ax.errorbar(
            [int(k) for k in steps], means, yerr=cis, marker="o", capsize=3, label=report["name"]
        )
    ax.set_xticks(sorted({int(k) for r in reports for k in r["returns"]}))
    ax.set_xlabel("adaptation steps (RL²: episode of the trial)")
    ax.set_ylabel("mean test return (95% CI)")
    first = reports[0]
    ax.set_title(f"{first['env']}: {first['test_tasks']} test tasks", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_training(runs: Sequence[RunDirectory], path: Path) -> Path:
    """Training return before and after adaptation against training minutes, per run."""
    fig, ax = pyplot().subplots(figsize=(5.5, 3.6))
    for run in runs:
        rows = [json.loads(line) for line in run.metrics_jsonl.read_text().splitlines()]
        train = [r for r in rows if r["phase"] == "train"]
        minutes = [r["train_seconds"] / 60 for r in train]
        label = run.path.name
        line = ax.plot(minutes, [r["return_after"] for r in train], label=f"{label}: after")[0]
        ax.plot(
            minutes,
            [r["return_before"] for r in train],
            ":",
            color=line.get_color(),
            label=f"{label}: before",
        )
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("training return")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
