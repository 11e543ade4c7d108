"""The benchmark's JSON as the markdown tables of ``docs/PERFORMANCE.md``.

One table per benchmark (MAML, ProtoNets): a row per workload, a column per method (tasks/s),
then the fastest peer, ``fastmeta auto`` against it, and the peak memory of ``auto`` and
learn2learn. Sampling gets its own table.

    python -m benchmarks.summary runs/benchmark-results.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable

from benchmarks.peers import LEARN2LEARN

AUTO = "fastmeta auto"


def is_peer(method: str) -> bool:
    """Everything that is not fastmeta: the libraries and the plain loops written for comparison."""
    return not method.startswith("fastmeta")


def _number(value: float | None, form: str = ",.1f") -> str:
    return "-" if value is None else format(value, form)


def _markdown(header: list[str], body: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def speed_table(rows: list[dict]) -> list[str]:
    """Tasks/s of every method per workload, with ``auto`` over the fastest peer."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by_workload: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_workload.setdefault(row["workload"], {})[row["method"]] = row

    def cells(workload: str, measured: dict[str, dict]) -> list[str]:
        speed = {m: r["tasks_per_s"] for m, r in measured.items() if r["status"] == "ok"}
        peers = {m: s for m, s in speed.items() if is_peer(m)}
        best = max(peers, key=peers.__getitem__, default=None)
        auto = speed.get(AUTO)
        ratio = auto / peers[best] if best and auto else None
        memory = [measured.get(m, {}).get("peak_memory_mb") for m in (AUTO, LEARN2LEARN)]
        return [
            workload,
            *(_number(speed.get(m)) for m in methods),
            best or "-",
            _number(ratio, ".2f") + ("x" if ratio else ""),
            " / ".join(_number(mb, ",.0f") for mb in memory),
        ]

    header = ["workload", *methods, "fastest peer", "auto / fastest peer", "MB auto / l2l"]
    return _markdown(header, (cells(w, m) for w, m in by_workload.items()))


def sampling_table(rows: list[dict]) -> list[str]:
    """Tasks/s of each sampler and its ratio to learn2learn's (paired rounds)."""
    body = ([r["workload"], r["method"], _number(r["tasks_per_s"]), _number(r["ratio"], ".1f")]
            for r in rows)  # fmt: skip
    return _markdown(["workload", "method", "tasks/s", "x learn2learn"], body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JSON written by python -m benchmarks --json")
    with open(parser.parse_args(argv).results) as handle:
        report = json.load(handle)
    print(f"{report['command']}\n{report['date']}; {report['machine']}")
    for benchmark in dict.fromkeys(r["benchmark"] for r in report["rows"]):
        rows = [r for r in report["rows"] if r["benchmark"] == benchmark]
        lines = sampling_table(rows) if benchmark == "sampling" else speed_table(rows)
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
