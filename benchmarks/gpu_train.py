"""Part (c) of ``benchmarks.gpu``: real Omniglot 5-way 1-shot MAML to 98 % validation accuracy.

The ``maml-omniglot-5w1s`` preset (the MAML paper's protocol) trained by fastmeta's
:class:`~fastmeta.train.trainer.Trainer`, validated every 250 meta-steps on its 200 fixed
validation episodes, stopped at the first validation at or above the target
(``train.target_accuracy``) or at ``train.time_limit_minutes`` of training time, then tested as
usual. The time to the target is the trainer's training time (meta-steps only) at that
validation, read from ``metrics.jsonl``, so a run stopped from outside still reports what it
reached.

    python -m benchmarks.gpu_train --run-dir /tmp/run --result train.json --limit-s 120
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from fastmeta.presets import load_config
from fastmeta.run.settings import apply_run_overrides
from fastmeta.train.trainer import Trainer

PRESET = "maml-omniglot-5w1s"
TARGET = 0.98
VAL_EVERY = 250
DRY_RUN = ("train.iterations=2", "train.val_every=1", "train.val_episodes=4",
           "train.checkpoint_every=1", "train.log_every=1", "eval.episodes=4",
           "eval.batch_size=4", "model.hidden=8")  # fmt: skip
"""The dry run's tiny settings: two meta-steps of a narrow network, a few episodes."""


def overrides(device: str, limit_s: float, dry_run: bool, extra: list[str]) -> list[str]:
    """The preset's overrides for this run; ``extra`` (``key=value``) come last and win."""
    tiny = list(DRY_RUN) if dry_run else []
    timing = [f"device={device}", f"train.time_limit_minutes={limit_s / 60:.4f}"]
    until = [f"train.val_every={VAL_EVERY}", f"train.target_accuracy={TARGET}"]
    return [*timing, *until, *tiny, *extra]


def read_metrics(path: Path, target: float) -> dict[str, Any]:
    """Validation curve, time to ``target`` and median training tasks/s from ``metrics.jsonl``."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    validations = [
        {"step": r["step"], "accuracy": r["accuracy"], "train_seconds": r.get("train_seconds")}
        for r in rows
        if r.get("phase") == "val" and "accuracy" in r
    ]
    rates = [r["tasks_per_s"] for r in rows if r.get("phase") == "train" and "tasks_per_s" in r]
    first = next((v for v in validations if v["accuracy"] >= target), None)
    return {
        "target": target,
        "reached": first is not None,
        "step_at_target": None if first is None else first["step"],
        "train_seconds_to_target": None if first is None else first["train_seconds"],
        "best_accuracy": max((v["accuracy"] for v in validations), default=None),
        "validations": validations,
        "median_tasks_per_s": statistics.median(rates) if rates else None,
        "last_step": rows[-1]["step"] if rows else 0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a new run directory")
    parser.add_argument("--result", type=Path, required=True, help="write the result here")
    parser.add_argument("--limit-s", type=float, required=True, help="training-time limit")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dry-run", action="store_true", help="two steps of a narrow network")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.monotonic()
    settings = overrides(args.device, args.limit_s, args.dry_run, args.set)
    config = apply_run_overrides(load_config(PRESET), settings)
    trainer = Trainer.create(config, args.run_dir, progress_bar=False, verbose=True)
    built = time.monotonic() - started
    print(f"{PRESET} on {trainer.device}: data and model built in {built:.1f} s", flush=True)
    report = trainer.fit()
    result = read_metrics(args.run_dir / "metrics.jsonl", TARGET)
    result.update(
        preset=PRESET,
        device=str(trainer.device),
        overrides=settings,
        setup_seconds=built,
        wall_seconds=time.monotonic() - started,
        train_seconds=trainer.progress.train_seconds,
        iterations=trainer.progress.step,
        test=report,
    )
    args.result.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
