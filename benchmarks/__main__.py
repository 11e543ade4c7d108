"""The whole speed comparison in one command: MAML, ProtoNets and sampling.

    .venv-peers/bin/python -m benchmarks --threads 1 --json bench.json       # full (long)
    .venv-peers/bin/python -m benchmarks --quick                             # ~2 minutes

Peers (learn2learn, higher, TorchOpt) are used when importable and skipped otherwise; run from
the peers environment of ``PEERS.md``. Every method's gradient is checked against a float64
reference before it is timed. Real Omniglot workloads are added when ``$FASTMETA_DATA`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone

import torch

from benchmarks import bench_maml, bench_protonet, bench_sampling
from benchmarks.measure import machine
from benchmarks.peers import LEARN2LEARN
from benchmarks.report import Row, table
from fastmeta.train.allocator import keep_freed_memory

PARTS = ("maml", "protonet", "sampling")


def sampling_rows(rounds: int, seconds: float, device: torch.device) -> list[Row]:
    """bench_sampling's measurement as table rows (ratios to learn2learn's TaskDataset)."""
    print("sampling ...", flush=True)
    results, _ = bench_sampling.measure(rounds, seconds, device)
    workload = (
        f"sampling, {bench_sampling.WAYS}-way {bench_sampling.SHOTS}-shot "
        f"{bench_sampling.QUERIES}q, meta-batch {bench_sampling.META_BATCH}"
    )
    return [
        Row(
            "sampling",
            workload,
            r["method"],
            "ok",
            tasks_per_s=r["median"],
            rounds=r["rounds"],
            ratio=r.get("speedup_median"),
        )
        for r in results
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few small workloads (~2 min)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, help="alternating timing rounds (default 3; 2 quick)")
    parser.add_argument("--seconds", type=float, help="length of a round (default 1; 0.3 quick)")
    parser.add_argument("--json", default="runs/benchmark-results.json", help="write results here")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="tune glibc malloc as the fastmeta CLI does, for every method alike; peak memory "
        "then counts only what no earlier method freed",
    )
    args = parser.parse_args(argv)
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error("--keep-freed-memory needs glibc (Linux)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rounds = args.rounds or (2 if args.quick else 3)
    seconds = args.seconds or (0.3 if args.quick else 1.0)
    started = machine(device)

    rows: list[Row] = []
    if "maml" in args.only:
        configs = (
            bench_maml.QUICK
            if args.quick
            else bench_maml.full_configs(with_omniglot=bool(os.environ.get("FASTMETA_DATA")))
        )
        rows += bench_maml.run(configs, device, rounds, seconds)
    if "protonet" in args.only:
        meta_batches = (32,) if args.quick else (4, 32, 128)
        rows += bench_protonet.run(meta_batches, 15, device, rounds, seconds)
    if "sampling" in args.only:
        rows += sampling_rows(rounds, 0.3 if args.quick else seconds, device)

    print(table(rows, LEARN2LEARN))
    finished = machine(device)
    print(
        f"\n{started['cpu']}; torch {started['torch']}, {started['threads']} threads, "
        f"device {device}; load average (1 min) before/after "
        f"{started['load_average'][0]:.2f} / {finished['load_average'][0]:.2f}"  # type: ignore[index]
        f"; glibc malloc {'tuned' if args.keep_freed_memory else 'default'}"
    )
    report = {
        "command": " ".join([sys.executable, "-m", "benchmarks", *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": started,
        "keep_freed_memory": args.keep_freed_memory,
        "load_average_after": finished["load_average"],
        "rows": [row.as_dict() for row in rows],
    }
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
