"""The ``fastmeta`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXPERIMENTS = ("sine",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmeta", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="meta-train and evaluate an experiment",
        description="Meta-train, then evaluate on fixed test tasks. Settings are key=value.",
    )
    train.add_argument("experiment", choices=EXPERIMENTS)
    train.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. iterations=2000")
    train.add_argument("--out", type=Path, default=None, help="run directory (default runs/<name>)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _train(args: argparse.Namespace) -> int:
    from fastmeta.config import apply_overrides
    from fastmeta.experiments.sine import SineConfig, report, run_sine

    try:
        config = apply_overrides(SineConfig(), args.overrides)
    except ValueError as error:
        print(f"fastmeta train: {error}", file=sys.stderr)
        return 2
    out_dir = args.out or Path("runs") / args.experiment
    result = run_sine(config, out_dir, progress=not args.no_progress)
    print(report(result))
    print(f"results written to {out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
