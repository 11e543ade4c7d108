"""Part (a) of ``benchmarks.gpu``: the suite's CUDA tests, selected and recorded by a pytest plugin.

A CUDA test is one the suite skips without CUDA: it carries a ``skipif`` marker whose reason
names CUDA or a GPU. Loaded with ``-p benchmarks.gpu_tests`` while ``$FASTMETA_GPU_TESTS`` names
a file, the plugin deselects every other collected test and appends one JSON line per test
outcome to that file (so a run stopped at its time limit keeps what finished). Without the
variable it does nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "FASTMETA_GPU_TESTS"
CUDA_REASON = re.compile(r"\b(cuda|gpu)\b", re.IGNORECASE)
EXCLUDED = ("tests/benchmarks/test_gpu.py",)
"""Test files never searched: the dry-run test of ``benchmarks.gpu`` itself."""


def candidate_files(repo: Path) -> list[str]:
    """Test modules under ``repo/tests`` that mention both ``skipif`` and CUDA or a GPU (a
    superset of those holding CUDA tests, so collection stays short)."""
    found = []
    for path in sorted((repo / "tests").rglob("test_*.py")):
        relative = path.relative_to(repo).as_posix()
        text = path.read_text(errors="replace")
        if relative not in EXCLUDED and "skipif" in text and CUDA_REASON.search(text):
            found.append(relative)
    return found


def needs_cuda(item: pytest.Item) -> bool:
    """True when ``item`` is skipped without CUDA (a skipif marker whose reason says so)."""
    return any(
        CUDA_REASON.search(str(mark.kwargs.get("reason", "")))
        for mark in item.iter_markers("skipif")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the CUDA tests when the report variable is set."""
    if not os.environ.get(REPORT_ENV):
        return
    keep = [item for item in items if needs_cuda(item)]
    dropped = [item for item in items if not needs_cuda(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        return report.longreprtext.strip().splitlines()[-1][:300] if report.longreprtext else ""
    return ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Append the outcome of each test (its call, or a setup/teardown that did not pass)."""
    path = os.environ.get(REPORT_ENV)
    if not path or (report.when != "call" and report.passed):
        return
    entry: dict[str, Any] = {
        "test": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "seconds": round(report.duration, 3),
        "message": _message(report),
    }
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per outcome and the part's status: passed, failed, skipped (all) or none found."""
    counts: dict[str, int] = {}
    for entry in entries:
        outcome = "error" if entry["when"] != "call" and entry["outcome"] == "failed" else None
        key = outcome or entry["outcome"]
        counts[key] = counts.get(key, 0) + 1
    if not entries:
        status = "none found"
    elif counts.get("failed") or counts.get("error"):
        status = "failed"
    elif counts.get("passed"):
        status = "passed"
    else:
        status = "skipped"
    return {"status": status, "counts": counts, "tests": entries}
