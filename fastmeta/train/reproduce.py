"""``fastmeta reproduce``: train a set of presets and tabulate results beside published ones."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastmeta.presets import load_config, preset_names
from fastmeta.run.directory import RunDirectory
from fastmeta.train.report import results_table
from fastmeta.train.trainer import Trainer


def family_presets(family: str) -> list[str]:
    """The presets named ``<method>-<family>`` (``omniglot-5w1s``: every method's Omniglot
    5-way 1-shot preset), or an error naming the families there are."""
    names = sorted(name for name in preset_names() if name.endswith(f"-{family}"))
    if not names:
        found = (re.search(r"-([a-z0-9]+-\d+w\d+s)$", n) for n in preset_names())
        families = sorted({m.group(1) for m in found if m})
        raise ValueError(
            f"--family {family}: no preset is named <method>-{family}; families: "
            + ", ".join(families)
        )
    return names


def reproduce(
    presets: Sequence[str], out: Path, progress_bar: bool = True, existing: bool = False
) -> str:
    """Run each preset in ``out/<preset>`` (resuming or reusing a finished run) and return a
    markdown table of the test results; with ``existing``, train nothing: tabulate the runs
    that have a report and list the others as not run."""
    reports: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in presets:
        run = RunDirectory(out / name)
        if run.report().exists():
            reports.append(json.loads(run.report().read_text()))
        elif existing:
            missing.append(name)
        elif run.holds_run():
            reports.append(Trainer.resume(run.path, progress_bar).fit())
        else:
            reports.append(Trainer.create(load_config(name), run.path, progress_bar).fit())
    table = results_table(reports)
    if missing:
        table += f"\nnot run (no report in {out}): {', '.join(missing)}\n"
    return table
