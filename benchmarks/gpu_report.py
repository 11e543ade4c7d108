"""Part (d) of ``benchmarks.gpu``: one table of everything measured, and the issue's targets.

Rows come as dictionaries (the JSON of the run): test outcomes, timing and compile rows
(:class:`benchmarks.gpu_timing.GpuRow`) and the training result. Ratios are tasks/s over
learn2learn's on the same workload, across the timing and compile parts.
"""

from __future__ import annotations

from typing import Any

from benchmarks.peers import LEARN2LEARN

SPEED_TARGET = 60.0
"""MAML 5-way 1-shot, second order, meta-batch 32: at least 60x learn2learn's tasks/s."""
MEMORY_TARGET_MB = 1024.0
TIME_TARGET_S = 60.0
"""Real Omniglot 5-way 1-shot MAML to 98 % validation in at most 60 s of training."""

COLUMNS = ("part", "workload / test", "method", "result", "tasks/s", "x l2l", "peak MB",
           "step MB", "grad err", "host syncs")  # fmt: skip


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Set ``ratio`` of each timed row: its tasks/s over learn2learn's on its workload."""
    base = {
        r["workload"]: r["tasks_per_s"]
        for r in rows
        if r["method"] == LEARN2LEARN and r["status"] == "ok" and r.get("tasks_per_s")
    }
    for row in rows:
        if row.get("tasks_per_s") and row["workload"] in base:
            row["ratio"] = row["tasks_per_s"] / base[row["workload"]]


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def _row_cells(part: str, row: dict[str, Any]) -> list[str]:
    note = row.get("note") or ""
    result = note if note.startswith(row["status"]) else f"{row['status']}: {note}".rstrip(": ")
    if row["status"] == "ok" and row.get("precision") != "float32":
        fp32 = "fp32-equivalent" if row.get("fp32_equivalent") else "not fp32-equivalent"
        result = f"ok ({fp32})"
    return [
        part, row["workload"], row["method"], result,
        _number(row.get("tasks_per_s"), ",.1f"), _number(row.get("ratio"), ".2f"),
        _number(row.get("peak_allocated_mb"), ",.0f"), _number(row.get("peak_memory_mb"), ",.0f"),
        _number(row.get("gradient_error"), ".1e"),
        "-" if row.get("host_syncs") is None else str(row["host_syncs"]),
    ]  # fmt: skip


def _test_cells(entry: dict[str, Any]) -> list[str]:
    outcome = entry["outcome"]
    if entry["when"] != "call":
        outcome += f" in {entry['when']}"
    result = f"{outcome}: {entry['message']}" if entry.get("message") else outcome
    return ["tests", entry["test"], "pytest", result, *["-"] * 6]


def _train_cells(train: dict[str, Any]) -> list[str]:
    what = f"{train.get('preset', 'maml-omniglot-5w1s')}, {train.get('device', '?')}"
    if train.get("reached"):
        result = (
            f"{100 * train['target']:.0f} % validation after {train['train_seconds_to_target']} s "
            f"of training (step {train['step_at_target']})"
        )
    elif train.get("validations"):
        result = (
            f"{100 * train['target']:.0f} % not reached: best {100 * train['best_accuracy']:.2f} % "
            f"by step {train['last_step']}"
        )
    else:
        result = "no validation finished"
    if train.get("status") and train["status"] != "ok":
        result += f" ({train['status']})"
    rate = _number(train.get("median_tasks_per_s"), ",.1f")
    return ["train", what, "Trainer", result, rate, *["-"] * 5]


def table(report: dict[str, Any]) -> str:
    """One markdown table: tests, timing and compile rows, training."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    cells = [_test_cells(e) for e in report.get("tests", {}).get("tests", [])]
    cells += [_row_cells(r.get("part", "timing"), r) for r in report.get("rows", [])]
    if report.get("train"):
        cells.append(_train_cells(report["train"]))
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return "\n".join(lines)


def targets(report: dict[str, Any], headline: str) -> list[str]:
    """The issue's targets, each reached, not reached (with the number) or not measured."""
    rows = [r for r in report.get("rows", []) if r["workload"] == headline]
    ours = [
        r for r in rows
        if r["method"].startswith("fastmeta") and r["status"] == "ok" and r.get("tasks_per_s")
        and r.get("fp32_equivalent")
    ]  # fmt: skip
    lines = []
    best = max(ours, key=lambda r: r["tasks_per_s"], default=None)
    if best is None:
        lines.append("speed: not measured (no fp32-equivalent fastmeta row timed)")
    elif best.get("ratio") is None:
        lines.append(
            f"speed: fastest fp32-equivalent fastmeta row '{best['method']}' "
            f"{best['tasks_per_s']:,.1f} tasks/s; learn2learn was not timed, so no ratio"
        )
    else:
        verdict = "reached" if best["ratio"] >= SPEED_TARGET else "not reached"
        lines.append(
            f"speed: '{best['method']}' {best['tasks_per_s']:,.1f} tasks/s = {best['ratio']:.1f}x "
            f"learn2learn (target >= {SPEED_TARGET:.0f}x): {verdict}"
        )
    if best is not None:
        peak = best.get("peak_allocated_mb")
        if peak is None:
            lines.append("memory: not measured (GPU memory is measured on CUDA only)")
        else:
            verdict = "reached" if peak <= MEMORY_TARGET_MB else "not reached"
            lines.append(
                f"memory: '{best['method']}' peak {peak:,.0f} MB allocated "
                f"(target <= {MEMORY_TARGET_MB:,.0f} MB): {verdict}"
            )
    train = report.get("train") or {}
    if not train.get("validations"):
        lines.append("time to 98 %: not measured")
    elif not train.get("reached"):
        lines.append(f"time to 98 %: not reached (best {100 * train['best_accuracy']:.2f} %)")
    else:
        seconds = train["train_seconds_to_target"]
        verdict = "reached" if seconds <= TIME_TARGET_S else "not reached"
        lines.append(
            f"time to 98 %: {seconds} s of training (target <= {TIME_TARGET_S:.0f} s): {verdict}"
        )
    return lines
