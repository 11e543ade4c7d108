"""Test reports: the evaluation protocol every report states, the per-episode scores, the
summary a user reads, and the table of several runs beside their published numbers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fastmeta.datasets.registry import dataset_info
from fastmeta.run.settings import data_options
from fastmeta.run_config import RunConfig


def protocol(
    config: RunConfig,
    *,
    episodes: int,
    iterations: int,
    train_seconds: float,
    processes: int,
    test_inner_steps: int | None,
    batch_statistics: bool,
) -> dict[str, Any]:
    """The evaluation protocol of a test of ``config``'s run, stated in every report.

    ``test_inner_steps`` is the algorithm's (``None`` without an inner loop);
    ``batch_statistics`` says that its network normalises with each episode's BatchNorm
    statistics, which makes the scores depend on the query set (transductive).
    """
    c = config
    ways, shots, queries = c.sampler.test_episodes()
    regression = dataset_info(c.data.dataset).image_size is None
    report: dict[str, Any] = {
        "name": c.name,
        "algorithm": c.algorithm.name + (" (first order)" if c.algorithm.first_order else ""),
        "dataset": c.data.dataset,
        "split": getattr(data_options(c.data), "split", None),
        "episodes": episodes,
        "ways": None if regression else ways,
        "shots": shots,
        "queries_per_class": queries,
        "iterations": iterations,
        "train_seconds": round(train_seconds, 1),
        "time_limit_minutes": c.train.time_limit_minutes,
        "train_precision": c.train.precision,
        "processes": processes,
        "reference": c.reference,
    }
    if c.train.target_accuracy is not None:
        report["target_accuracy"] = c.train.target_accuracy
    if test_inner_steps is not None:
        report["test_inner_steps"] = test_inner_steps
    if batch_statistics:
        report["batchnorm"] = "batch statistics of each episode (transductive)"
    return report


def write_episodes(path: Path, scores: dict[str, torch.Tensor]) -> None:
    names = list(scores)
    rows = zip(*(scores[n].tolist() for n in names), strict=True)
    lines = ["episode," + ",".join(names)]
    lines += [f"{i}," + ",".join(f"{v:.6g}" for v in row) for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary of a test report."""
    lines = [
        f"{report['name']}: {report['algorithm']} on {report['dataset']}"
        + (f" ({report['split']} split)" if report.get("split") else ""),
        f"  protocol: {report['episodes']} test episodes, "
        + (f"{report['ways']}-way " if report["ways"] else "")
        + f"{report['shots']}-shot, {report['queries_per_class']} queries"
        + (" per class" if report["ways"] else "")
        + (f", {report['test_inner_steps']} inner steps" if "test_inner_steps" in report else "")
        + (f", BatchNorm: {report['batchnorm']}" if "batchnorm" in report else ""),
        f"  weights: {report['checkpoint']}",
    ]
    if "accuracy" in report:
        a = report["accuracy"]
        lines.append(f"  accuracy: {100 * a['mean']:.2f} +- {100 * a['ci95']:.2f} %")
    lines.append("  query loss: " + _format_loss(report["loss"]))
    for steps, scores in report.get("by_inner_steps", {}).items():
        lines.append(f"  after {steps:>2} inner steps, query loss: " + _format_loss(scores["loss"]))
    for head, summary in report.get("heads", {}).items():
        lines.append(f"  head {head}: {100 * summary['mean']:.2f} +- {100 * summary['ci95']:.2f} %")
    return "\n".join(lines)


def _format_loss(summary: dict[str, Any]) -> str:
    text = f"{summary['mean']:.4f} +- {summary['ci95']:.4f} (median {summary['median']:.4f})"
    if summary["non_finite"]:
        text += f", {summary['non_finite']} non-finite episodes excluded"
    return text


def results_table(reports: Sequence[dict[str, Any]]) -> str:
    """Markdown: preset, protocol, our result with 95% CI, the published number, cost."""
    lines = [
        "| preset | protocol | ours (95% CI) | published | iterations | train time |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        if "accuracy" in r:
            ours = f"{100 * r['accuracy']['mean']:.2f} +- {100 * r['accuracy']['ci95']:.2f} %"
        else:
            ours = f"MSE {r['loss']['mean']:.3f} +- {r['loss']['ci95']:.3f}"
        protocol = (
            f"{r['ways']}-way {r['shots']}-shot, {r['queries_per_class']} queries/class, "
            f"{r['episodes']} episodes"
            + (f", {r['test_inner_steps']} steps" if "test_inner_steps" in r else "")
        )
        lines.append(
            f"| {r['name']} | {protocol} | {ours} | {r.get('reference') or '-'} | "
            f"{r['iterations']} | {r['train_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"
