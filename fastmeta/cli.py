"""The ``fastmeta`` command line: train, eval, presets, algorithms, plot, reproduce, data,
adapt and export."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from fastmeta.predict import AdaptedClassifier
    from fastmeta.run_config import RunConfig

FOLDER_PRESET = "protonet-folder"


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
    train.add_argument(
        "--dist-timeout", type=float, metavar="SECONDS",
        help="under torchrun: stop every process when another has not answered for this long "
        "(default 300)",
    )  # fmt: skip
    train.add_argument(
        "--data", type=Path, metavar="FOLDER",
        help=f"train on your images: one sub-folder per class (default preset {FOLDER_PRESET})",
    )  # fmt: skip

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
    _add_inference_commands(commands)
    return parser


def _add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from fastmeta.datasets.commands import add_data_commands
    except ImportError:  # pragma: no cover - the datasets package always ships it
        return
    add_data_commands(commands)


def _add_inference_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="adapt a trained run to new classes and label query images (CSV)",
        description="Adapt to the classes of SUPPORT (one sub-folder per class, a few images "
        "each) and write file, predicted class and each class's probability for every query.",
    )
    adapt.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    adapt.add_argument("--support", type=Path, required=True, metavar="FOLDER")
    adapt.add_argument("--query", nargs="+", required=True, metavar="FOLDER_OR_FILE")
    adapt.add_argument("--out", type=Path, default=Path("predictions.csv"))
    export = commands.add_parser(
        "export",
        help="save a classifier for the support classes that runs with torch alone",
        description="Adapt to SUPPORT and save a torch.export program: images in [0, 1] in, "
        "class probabilities out (see docs/OWN_DATA.md for the loading snippet).",
    )
    export.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    export.add_argument("--support", type=Path, required=True, metavar="FOLDER")
    export.add_argument("--out", type=Path, default=Path("classifier.pt2"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and e[0] != "-" for e in extra):
        args.overrides += extra  # key=value after an option, e.g. `train P --data X key=value`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers = {
        "train": _train,
        "eval": _eval,
        "presets": _presets,
        "algorithms": _algorithms,
        "plot": _plot,
        "reproduce": _reproduce,
        "adapt": _adapt,
        "export": _export,
    }
    # Every sub-command is in ``handlers`` or stores its own (the ``data`` commands).
    handler = cast(
        "Callable[[argparse.Namespace], int]",
        handlers.get(args.command) or getattr(args, "handler", None),
    )
    if os.environ.get("FASTMETA_KEEP_FREED_MEMORY", "1") != "0":
        from fastmeta.train.allocator import keep_freed_memory

        keep_freed_memory()  # fewer page faults on a CPU; see fastmeta.train.allocator
    try:
        return handler(args)
    except (ValueError, OSError) as error:
        print(f"fastmeta {args.command}: {error}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    """Train on one process, or on each process that torchrun started (rank 0 reports)."""
    from fastmeta.train.distributed import PeerFailureError, distributed_session

    with distributed_session(args.dist_timeout) as session:
        try:
            return _train_in_session(args, reports=session.is_main)
        except PeerFailureError as error:
            print(f"fastmeta train: {error}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            # The process group is broken: tearing it down can wait on, or abort in, a gloo
            # thread still blocked on the lost peer (seen as SIGABRT), so leave at once.
            os._exit(1)


def _train_in_session(args: argparse.Namespace, reports: bool) -> int:
    from fastmeta.presets import load_config
    from fastmeta.run.settings import apply_run_overrides, resolve_config
    from fastmeta.train.report import format_report
    from fastmeta.train.trainer import NonFiniteLossError, Trainer

    if args.resume is not None:
        if args.preset or args.overrides:
            raise ValueError("--resume continues a run as configured; give no preset or overrides")
        trainer = Trainer.resume(args.resume, progress_bar=not args.no_progress)
    else:
        preset, overrides = args.preset, list(args.overrides)
        if preset is not None and "=" in preset:  # `train --data X key=value`: no preset named
            preset, overrides = None, [preset, *overrides]
        if args.data is not None:
            preset = preset or FOLDER_PRESET
        if preset is None:
            raise ValueError("name a preset (see `fastmeta presets`) or a .yaml config to train")
        if args.data is not None:
            overrides = ["data.dataset=folder", f"data.root={args.data.resolve()}", *overrides]
        config = resolve_config(apply_run_overrides(load_config(preset), overrides))
        run_dir = args.out or Path("runs") / config.name
        if needs_split_file(config):
            config = _plan_folder(config, run_dir, reports=True)
        trainer = Trainer.create(config, run_dir, progress_bar=not args.no_progress)
    try:
        report = trainer.fit()
    except NonFiniteLossError as error:
        print(
            f"fastmeta train: {error}. The last good checkpoint is kept in "
            f"{trainer.run.checkpoints}.",
            file=sys.stderr,
        )
        return 1
    if not reports:
        return 0
    print(format_report(report))
    print(f"run directory: {trainer.run_dir}")
    try:
        from fastmeta.train.plots import draw_pictures

        for path in draw_pictures(trainer):
            print(f"wrote {path}")
    except ImportError:
        print("(for pictures of the run, install the plot extra: pip install 'fastmeta[plot]')")
    return 0


def needs_split_file(config: RunConfig) -> bool:
    """A run on the user's own folder whose class split is not planned yet."""
    from fastmeta.datasets.registry import dataset_info

    return dataset_info(config.data.dataset).own_data and not config.data.options.get("split_file")


def _plan_folder(config: RunConfig, run_dir: Path, reports: bool) -> RunConfig:
    """Split the image folder, write split.yaml (and print what was found when ``reports``);
    the config to train with."""
    from fastmeta.run.directory import RunDirectory
    from fastmeta.run.folder_split import write_split_file

    if reports:
        RunDirectory(run_dir).refuse_existing()
    config, split = write_split_file(config, run_dir)
    if reports:
        print(split.report())
        print(f"wrote {RunDirectory(run_dir).split_file.resolve()}")
    return config


def _adapt(args: argparse.Namespace) -> int:
    from fastmeta.predict import load

    classifier = load(args.run).adapt(args.support)
    _print_support(classifier)
    predictions = classifier.classify(args.query)
    for name, reason in predictions.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    predictions.write_csv(args.out)
    counts = Counter(predictions.predicted)
    summary = ", ".join(f"{c} {counts[c]}" for c in classifier.classes if counts[c])
    print(f"classified {len(predictions.files)} images ({summary}); wrote {args.out}")
    return 0


def _print_support(classifier: AdaptedClassifier) -> None:
    print(f"support: {len(classifier.classes)} classes: {', '.join(classifier.classes)}")
    report = classifier.support_report
    if report is not None and report.summary():
        print(f"left out of the support set:\n{report.summary()}", file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    from fastmeta.predict import load

    classifier = load(args.run).adapt(args.support)
    _print_support(classifier)
    path = classifier.export(args.out)
    print(f"wrote {path}: {len(classifier.classes)} classes ({', '.join(classifier.classes)})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fastmeta.train.report import format_report
    from fastmeta.train.trainer import Trainer

    trainer = Trainer.resume(args.run_dir, progress_bar=False, eval_overrides=args.overrides)
    report = trainer.test(use_best=not args.final, name=args.name)
    print(format_report(report))
    print(f"written: {trainer.run.report(args.name)}, {trainer.run.episodes(args.name)}")
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
