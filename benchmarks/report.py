"""Result rows of the benchmarks, their speed ratios and the printed table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One method on one workload. ``status``: ok, refused (wrong gradient) or failed."""

    benchmark: str
    workload: str
    method: str
    status: str
    gradient_error: float | None = None
    tasks_per_s: float | None = None
    rounds: list[float] = field(default_factory=list)
    peak_memory_mb: float | None = None
    ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def add_ratios(rows: list[Row], baseline: str) -> None:
    """Set each ok row's ``ratio``: its tasks/s over ``baseline``'s on the same workload."""
    base = {
        r.workload: r.tasks_per_s
        for r in rows
        if r.method == baseline and r.status == "ok" and r.tasks_per_s
    }
    for row in rows:
        if row.status == "ok" and row.workload in base and row.tasks_per_s is not None:
            row.ratio = row.tasks_per_s / base[row.workload]


def _cell(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def table(rows: list[Row], baseline: str) -> str:
    """Rows grouped by workload: tasks/s, peak memory, ratio to ``baseline``, gradient error."""
    lines = []
    header = f"{'method':<30}{'tasks/s':>11}{'peak MB':>10}{'x ' + baseline:>16}{'grad err':>10}"
    for workload in dict.fromkeys(r.workload for r in rows):
        lines += ["", workload, header]
        for r in (r for r in rows if r.workload == workload):
            error = r.gradient_error
            cells = (
                f"{r.method:<30}{_cell(r.tasks_per_s, ',.1f'):>11}"
                f"{_cell(r.peak_memory_mb, ',.0f'):>10}{_cell(r.ratio, '.2f'):>16}"
                f"{_cell(error, '.1e'):>10}"
            )
            if r.status != "ok":
                cells += f"  {r.status.upper()}: {r.note}"
            lines.append(cells)
    return "\n".join(lines)


Column = tuple[str, str, str]
"""A markdown column: its header, the row key it shows, and the format of the value."""


def publish(
    rows: list[dict[str, object]],
    columns: list[Column],
    started: dict[str, object],
    load_after: object,
    json_path: str | None,
) -> None:
    """Write ``rows`` and the machine as JSON when asked, then print them as a markdown table
    (a value that is ``None``, such as a ratio without its reference row, prints as ``-``)."""
    if json_path:
        with open(json_path, "w") as handle:
            json.dump({"machine": started, "rows": rows}, handle, indent=2)
    print("| " + " | ".join(header for header, _, _ in columns) + " |")
    print("|" + "|".join("---:" if form else "---" for _, _, form in columns) + "|")
    for row in rows:
        cells = ("-" if row[key] is None else format(row[key], form) for _, key, form in columns)
        print("| " + " | ".join(cells) + " |")
    print(f"{started}; load average after {load_after}")
