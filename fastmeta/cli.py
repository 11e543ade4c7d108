"""The ``fastmeta`` command line: train, eval, presets, algorithms, plot, reproduce, data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastmeta", description="Fast, correct meta-learning for PyTorch."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="meta-train a preset or YAML config, then test it",
        description="Meta-train, validate, checkpoint and test. Settings are key=value with "
        "dotted names, e.g. algorithm.inner_lr=0.4 train.iterations=2000.",
    )
    train.add_argument("preset", nargs="?", help="preset name (see `fastmeta presets`) or a .yaml")
    train.add_argument("overrides", nargs="*", metavar="key=value")
    train.add_argument("--out", type=Path, help="run directory (default runs/<name>)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    evaluate = commands.add_parser(
        "eval", help="test a run's model on fixed episodes (mean and 95%% CI)"
    )
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="test protocol changes, e.g. sampler.test_queries=15 eval.episodes=1000",
    )  # fmt: skip
    evaluate.add_argument("--name", default="eval", help="report file name (default eval.json)")
    evaluate.add_argument("--final", action="store_true", help="use the last weights, not best")

    commands.add_parser("presets", help="list the presets")
    commands.add_parser("algorithms", help="list the algorithms (values of algorithm.name)")

    plot = commands.add_parser("plot", help="draw a run's learning curves (needs matplotlib)")
    plot.add_argument("run_dir", type=Path)

    reproduce = commands.add_parser("reproduce", help="run a set of presets and tabulate them")
    reproduce.add_argument("presets", nargs="+", help="preset names")
    reproduce.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    reproduce.add_argument("--table", type=Path, help="also write the markdown table here")
    reproduce.add_argument("--no-progress", action="store_true")

    _add_data_commands(commands)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    try:
        from fastmeta.datasets.commands import add_data_commands
    except ImportError:  # pragma: no cover - the datasets package always ships it
        return
    add_data_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "train": _train,
        "eval": _eval,
        "presets": _presets,
        "algorithms": _algorithms,
        "plot": _plot,
        "reproduce": _reproduce,
    }
    handler = handlers.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"fastmeta {args.command}: {error}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import NonFiniteLossError, Trainer, format_report

    if args.resume is not None:
        if args.preset or args.overrides:
            raise ValueError("--resume continues a run as configured; give no preset or overrides")
        trainer = Trainer.resume(args.resume, progress_bar=not args.no_progress)
    else:
        if args.preset is None:
            raise ValueError("name a preset (see `fastmeta presets`) or a .yaml config to train")
        config = apply_overrides(load_config(args.preset), args.overrides)
        run_dir = args.out or Path("runs") / config.name
        trainer = Trainer.create(config, run_dir, progress_bar=not args.no_progress)
    try:
        report = trainer.fit()
    except NonFiniteLossError as error:
        print(
            f"fastmeta train: {error}. The last good checkpoint is kept in "
            f"{trainer.run_dir / 'checkpoints'}.",
            file=sys.stderr,
        )
        return 1
    print(format_report(report))
    print(f"run directory: {trainer.run_dir}")
    try:
        from fastmeta.train.plots import draw_pictures

        for path in draw_pictures(trainer):
            print(f"wrote {path}")
    except ImportError:
        print("(for pictures of the run, install the plot extra: pip install 'fastmeta[plot]')")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fastmeta.train.trainer import Trainer, format_report

    trainer = Trainer.resume(args.run_dir, progress_bar=False, eval_overrides=args.overrides)
    report = trainer.test(use_best=not args.final, name=args.name)
    print(format_report(report))
    print(f"written: {args.run_dir / args.name}.json, {args.run_dir / args.name}_episodes.csv")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from fastmeta.presets import preset_names, preset_summary

    for name in preset_names():
        print(f"{name:<28} {preset_summary(name)}")
    return 0


def _algorithms(args: argparse.Namespace) -> int:
    from fastmeta.algorithms.registry import algorithm_specs

    for name, spec in algorithm_specs().items():
        print(f"{name:<16} {spec.description}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fastmeta.train.plots import draw_pictures
    from fastmeta.train.trainer import Trainer

    trainer = Trainer.resume(args.run_dir, progress_bar=False)
    trainer.load_best()
    for path in draw_pictures(trainer):
        print(f"wrote {path}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from fastmeta.train.reproduce import reproduce

    table = reproduce(args.presets, args.out, progress_bar=not args.no_progress)
    print(table)
    if args.table is not None:
        args.table.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
