"""``fastmeta reproduce``: train a set of presets and tabulate results beside published ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fastmeta.presets import load_config
from fastmeta.run.directory import RunDirectory
from fastmeta.train.report import results_table
from fastmeta.train.trainer import Trainer


def reproduce(presets: Sequence[str], out: Path, progress_bar: bool = True) -> str:
    """Run each preset in ``out/<preset>`` (resuming or reusing a finished run) and return a
    markdown table of the test results."""
    reports = []
    for name in presets:
        run = RunDirectory(out / name)
        if run.report().exists():
            reports.append(json.loads(run.report().read_text()))
        elif run.holds_run():
            reports.append(Trainer.resume(run.path, progress_bar).fit())
        else:
            reports.append(Trainer.create(load_config(name), run.path, progress_bar).fit())
    return results_table(reports)
