"""``fastmeta train``, ``eval``, ``plot`` and ``reproduce``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fastmeta.cli.parser import FOLDER_PRESET

if TYPE_CHECKING:
    from fastmeta.run.folder_split import FolderSplit
    from fastmeta.run_config import RunConfig
    from fastmeta.train.trainer import Trainer


def train(args: argparse.Namespace) -> int:
    """Train on one process, or on each process that torchrun started (rank 0 reports); a
    meta-RL preset or run is handed to ``fastmeta rl train``."""
    from fastmeta.rl.cli import is_rl_preset, is_rl_run, train_rl

    if is_rl_preset(args.preset) or is_rl_run(args.resume):
        return train_rl(args)
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
    from fastmeta.train.guard import DivergedError, NonFiniteLossError
    from fastmeta.train.report import format_report
    from fastmeta.train.trainer import Trainer

    progress = not args.no_progress
    if args.resume is not None:
        if args.preset is not None and "=" not in args.preset:
            raise ValueError(
                "--resume continues a run as it was configured; give key=value changes only "
                "(no preset)"
            )
        changes = [args.preset, *args.overrides] if args.preset else list(args.overrides)
        trainer = Trainer.resume(
            args.resume, progress_bar=progress, changes=changes, verbose=reports
        )
    else:
        config, split = _new_run_config(args, reports)
        run_dir = args.out or Path("runs") / config.name
        trainer = Trainer.create(
            config, run_dir, progress_bar=progress, force=args.force, verbose=reports,
            folder_split=split,
        )  # fmt: skip
    try:
        report = trainer.fit()
    except (NonFiniteLossError, DivergedError) as error:
        raise RuntimeError(f"{error}. {_kept(trainer)}") from None
    if not reports:
        return 0
    print(format_report(report))
    print(f"run directory: {trainer.run_dir}")
    from fastmeta.pictures import PlotExtraMissing
    from fastmeta.train.plots import draw_pictures

    try:
        for path in draw_pictures(trainer):
            print(f"wrote {path}")
    except PlotExtraMissing:
        print("(for pictures of the run, install the plot extra: pip install 'fastmeta[plot]')")
    return 0


def _kept(trainer: Trainer) -> str:
    """What is left of a run that stopped diverging, and how to go on from it."""
    from fastmeta.run.checkpoint import latest_checkpoint

    latest = latest_checkpoint(trainer.run.path)
    if latest is None:
        return "No checkpoint was written before it; start again with lower learning rates"
    return (
        f"The checkpoints written before it are kept (the newest: {latest}); continue from it "
        f"with lower learning rates: fastmeta train --resume {trainer.run.path} optimizer.lr=..."
    )


def _new_run_config(
    args: argparse.Namespace, reports: bool
) -> tuple[RunConfig, FolderSplit | None]:
    """The checked configuration of a new run, and an image folder's planned class split."""
    from fastmeta.datasets.registry import dataset_info
    from fastmeta.presets import load_config
    from fastmeta.run.folder_split import plan_run_split
    from fastmeta.run.settings import apply_run_overrides, resolve_config

    preset, overrides = args.preset, list(args.overrides)
    if preset is not None and "=" in preset:  # `train --data X key=value`: no preset named
        preset, overrides = None, [preset, *overrides]
    if args.backbone is not None:
        if args.data is None:
            raise ValueError("--backbone goes with --data FOLDER (a frozen network on your images)")
        overrides = [*_frozen_backbone(args.backbone), *overrides]
        preset = preset or FOLDER_PRESET
    if args.data is not None:
        overrides = ["data.dataset=folder", f"data.root={args.data.resolve()}", *overrides]
        if preset is None:  # sized for this folder and machine
            preset = FOLDER_PRESET
            overrides = _auto_settings(args.data, overrides, reports)
    if preset is None:
        raise ValueError("name a preset (see `fastmeta presets`) or a .yaml config to train")
    config = resolve_config(apply_run_overrides(load_config(preset), overrides))
    if not dataset_info(config.data.dataset).own_data or config.data.options.get("split_file"):
        return config, None
    run_dir = args.out or Path("runs") / config.name
    config, split = plan_run_split(config, run_dir)
    if reports:
        print(split.report())
    return config, split


def _frozen_backbone(backbone: str) -> list[str]:
    """``--backbone``'s settings: the network (a timm/hf name, or a fastmeta run's network
    with its model settings), frozen and not meta-trained, scored by prototypes and logistic
    regression on its embedding."""
    from dataclasses import fields

    from fastmeta.backbones.names import external
    from fastmeta.run.directory import RunDirectory
    from fastmeta.run.settings import image_size

    frozen = ["model.freeze=all", "train.iterations=0", "train.val_every=0",
              "eval.heads=[prototypes,logistic]"]  # fmt: skip
    if external(backbone) is not None:
        return [f"model.name={backbone}", "data.normalize=none", *frozen]
    if not Path(backbone).expanduser().is_dir():
        raise ValueError(
            f"--backbone {backbone}: give timm:<architecture>, hf:<model id or config>, or a "
            "fastmeta run directory"
        )
    trained = RunDirectory.of(backbone).read_config()
    model = trained.model
    kept = [f for f in fields(model) if f.name not in ("weights", "freeze", "pretrained")]
    # JSON is YAML, which overrides are parsed as: tuples become lists, None null
    settings = [f"model.{f.name}={json.dumps(getattr(model, f.name))}" for f in kept]
    size = f"data.image_size={image_size(trained.data)}"  # the size its network learned at
    return [*settings, size, f"model.weights={Path(backbone).expanduser().resolve()}", *frozen]


def _auto_settings(folder: Path, overrides: list[str], reports: bool) -> list[str]:
    """``overrides`` preceded by the settings :mod:`fastmeta.run.auto_settings` chooses for
    ``folder`` on this machine (printed with the time estimate)."""
    from fastmeta.presets import load_config
    from fastmeta.run.auto_settings import plan_auto_settings, survey_folder
    from fastmeta.run.settings import apply_run_overrides, resolve_config

    def configure(chosen: list[str]) -> RunConfig:
        return resolve_config(
            apply_run_overrides(load_config(FOLDER_PRESET), [*chosen, *overrides])
        )

    survey = survey_folder(folder)
    if len(survey.files_per_class) < 2:
        return overrides  # reading the folder says what is wrong with it
    given = {item.split("=", 1)[0] for item in overrides}
    plan = plan_auto_settings(survey, configure, given)
    if reports:
        print(plan.summary(), flush=True)
    return [*plan.overrides, *overrides]


def evaluate(args: argparse.Namespace) -> int:
    from fastmeta.rl.cli import eval_rl, is_rl_run

    if is_rl_run(args.run_dir):
        return eval_rl(args)
    from fastmeta.train.report import format_report
    from fastmeta.train.trainer import Trainer

    target = [o for o in args.overrides if o.startswith("data.")]
    if target and args.on is None:
        raise ValueError(
            f"{target[0]!r}: data.* settings describe the data given with --on DATA; the run's "
            "own data cannot change after training"
        )
    protocol = [o for o in args.overrides if not o.startswith("data.")]
    trainer = Trainer.resume(args.run_dir, progress_bar=False, eval_overrides=protocol)
    if args.on is not None:
        trainer.use_test_data([*_data_named(args.on), *target])
    report = trainer.test(
        use_best=not args.final, name=args.name, allow_untrained=args.allow_untrained
    )
    print(format_report(report))
    print(f"written: {trainer.run.report(args.name)}, {trainer.run.episodes(args.name)}")
    return 0


def _data_named(name: str) -> list[str]:
    """``--on``'s settings: a registered dataset by name, else an image folder."""
    from fastmeta.datasets.registry import DATASETS

    if name in DATASETS:
        return [f"data.dataset={name}"]
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ValueError(
            f"--on {name}: no dataset of that name ({', '.join(sorted(DATASETS))}) and no such "
            "folder"
        )
    return ["data.dataset=folder", f"data.root={folder.resolve()}"]


def plot(args: argparse.Namespace) -> int:
    from fastmeta.run.directory import RunDirectory
    from fastmeta.train.plots import draw_pictures, plot_runs_against_time
    from fastmeta.train.trainer import Trainer

    if args.against_time is not None:
        runs = [RunDirectory(path) for path in args.run_dirs]
        for run in runs:
            if not run.metrics_jsonl.exists():
                raise ValueError(f"{run.path}: not a run directory (no metrics.jsonl)")
        if args.against_time.exists():
            raise ValueError(f"{args.against_time} exists; choose another --against-time name")
        print(f"wrote {plot_runs_against_time(runs, args.against_time)}")
        return 0
    if len(args.run_dirs) > 1:
        raise ValueError("several runs draw one picture: add --against-time PNG")
    trainer = Trainer.resume(args.run_dirs[0], progress_bar=False)
    trainer.load_best()
    for path in draw_pictures(trainer):
        print(f"wrote {path}")
    return 0


def reproduce(args: argparse.Namespace) -> int:
    from fastmeta.train.reproduce import family_presets, reproduce

    if bool(args.presets) == bool(args.family):
        raise ValueError("name the presets to reproduce, or one --family (not both)")
    presets = family_presets(args.family) if args.family else args.presets
    table = reproduce(presets, args.out, not args.no_progress, existing=args.existing)
    print(table)
    if args.table is not None:
        args.table.write_text(table)
    return 0
