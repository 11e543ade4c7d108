"""``fastmeta reproduce``: train a set of presets and tabulate results beside published ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastmeta.presets import load_config
from fastmeta.train.trainer import Trainer


def reproduce(presets: Sequence[str], out: Path, progress_bar: bool = True) -> str:
    """Run each preset in ``out/<preset>`` (resuming or reusing a finished run) and return a
    markdown table of the test results."""
    reports = []
    for name in presets:
        run_dir = out / name
        if (run_dir / "report.json").exists():
            reports.append(json.loads((run_dir / "report.json").read_text()))
        elif (run_dir / "config.yaml").exists():
            reports.append(Trainer.resume(run_dir, progress_bar).fit())
        else:
            reports.append(Trainer.create(load_config(name), run_dir, progress_bar).fit())
    return results_table(reports)


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
