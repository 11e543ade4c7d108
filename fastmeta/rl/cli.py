"""The meta-RL commands: ``fastmeta rl train | eval | presets | envs | plot | gif |
metaworld-eval``, and what ``fastmeta train`` / ``fastmeta eval`` need to hand RL runs over.

:func:`add_rl_commands` adds the ``rl`` command group to the ``fastmeta`` parser (each
sub-command stores its ``handler``); :func:`is_rl_preset` and :func:`is_rl_run` tell a meta-RL
preset or run directory from a supervised one, so ``fastmeta train PRESET`` and ``fastmeta
eval RUN`` can call :func:`train_rl` / :func:`eval_rl` with their own parsed arguments
(``preset``, ``overrides``, ``out``, ``resume``, ``no_progress``, ``dist_timeout``; ``run_dir``,
``overrides``, ``name``, ``final``). ``python -m fastmeta.rl`` runs the same commands alone.
Nothing here imports torch or gymnasium until a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

RL_KIND = "rl"


def is_rl_preset(name: str | None) -> bool:
    """True for a meta-RL preset name, or a YAML file that says ``kind: rl``."""
    if not name:
        return False
    if name.endswith((".yaml", ".yml")):
        return _says_rl(Path(name))
    from fastmeta.rl.presets import preset_names

    return name in preset_names()


def is_rl_run(path: str | os.PathLike[str] | None) -> bool:
    """True for a run directory whose ``config.yaml`` says ``kind: rl``."""
    return path is not None and _says_rl(Path(path) / "config.yaml")


def _says_rl(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("kind") == RL_KIND


def add_rl_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fastmeta rl ...`` (module docstring) to the ``fastmeta`` sub-commands."""
    rl = commands.add_parser("rl", help="meta-reinforcement learning (MAML-TRPO, ProMP, RL²...)")
    _add_commands(rl.add_subparsers(dest="rl_command", required=True))


def _add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser("train", help="meta-train an RL preset or YAML, then test it")
    train.add_argument("preset", nargs="?", help="preset name (fastmeta rl presets) or a .yaml")
    train.add_argument("overrides", nargs="*", metavar="key=value")
    train.add_argument("--out", type=Path, help="run directory (default runs/<name>)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a process waits for the others",
    )
    train.set_defaults(handler=train_rl)
    evaluate = commands.add_parser("eval", help="test a run: return after 0..N adaptation steps")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("overrides", nargs="*", metavar="eval.key=value")
    evaluate.add_argument("--name", default="eval", help="report file name (default eval.json)")
    evaluate.add_argument("--final", action="store_true", help="use the last weights, not best")
    evaluate.set_defaults(handler=eval_rl)
    commands.add_parser("presets", help="list the meta-RL presets").set_defaults(handler=_presets)
    commands.add_parser("envs", help="list the task distributions").set_defaults(handler=_envs)
    plot = commands.add_parser("plot", help="returns vs adaptation steps and vs training time")
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    plot.add_argument("--report", default="report", help="report name in each run (report)")
    plot.add_argument("--out", type=Path, help="folder for the pictures (default: first run)")
    plot.set_defaults(handler=_plot)
    gif = commands.add_parser("gif", help="a GIF of the adapted policy on a test task (MuJoCo)")
    gif.add_argument("run_dir", type=Path)
    gif.add_argument("--task", type=int, default=0, help="test task index (default 0)")
    gif.add_argument("--steps", type=int, default=1, help="adaptation steps (default 1)")
    gif.add_argument("--out", type=Path, help="the GIF (default RUN_DIR/adapted.gif)")
    gif.set_defaults(handler=_gif)
    mw = commands.add_parser("metaworld-eval", help="Meta-World's own meta-test protocol")
    mw.add_argument("run_dir", type=Path)
    mw.add_argument("--evals", type=int, default=10, help="rounds of new goals (default 10)")
    mw.set_defaults(handler=_metaworld_eval)


def train_rl(args: argparse.Namespace) -> int:
    """Train (or ``--resume``) a meta-RL run, on one process or under ``torchrun``."""
    from fastmeta.train.distributed import distributed_session

    with distributed_session(getattr(args, "dist_timeout", None)) as session:
        return _train(args, reports=session.is_main)


def _train(args: argparse.Namespace, reports: bool) -> int:
    from fastmeta.config import apply_overrides
    from fastmeta.rl.evaluation import format_returns
    from fastmeta.rl.presets import load_config
    from fastmeta.rl.trainer import RLTrainer

    progress = not args.no_progress
    if args.resume is not None:
        if args.preset or args.overrides:
            raise ValueError("--resume continues a run as configured; give no preset or overrides")
        trainer = RLTrainer.resume(args.resume, progress_bar=progress)
    else:
        if args.preset is None:
            raise ValueError("name a meta-RL preset (fastmeta rl presets) or a .yaml to train")
        config = apply_overrides(load_config(args.preset), list(args.overrides))
        trainer = RLTrainer.create(config, args.out or Path("runs") / config.name, progress)
    report = trainer.fit()
    if reports:
        print(format_returns(report))
        print(f"run directory: {trainer.run.path}")
        _pictures(trainer.run.path)
    return 0


def eval_rl(args: argparse.Namespace) -> int:
    """Test a meta-RL run's policy (``eval.*`` overrides change the protocol)."""
    from fastmeta.rl.evaluation import format_returns
    from fastmeta.rl.trainer import RLTrainer

    trainer = RLTrainer.resume(args.run_dir, progress_bar=False, eval_overrides=args.overrides)
    report = trainer.test(use_best=not args.final, name=args.name)
    print(format_returns(report))
    print(f"written: {trainer.run.report(args.name)}, {trainer.run.episodes(args.name)}")
    return 0


def _pictures(run_dir: Path) -> None:
    from fastmeta.pictures import PlotExtraMissing
    from fastmeta.rl.plots import plot_runs

    try:
        for path in plot_runs([run_dir]):
            print(f"wrote {path}")
    except PlotExtraMissing:
        print("(for pictures, install the plot extra: pip install 'fastmeta[plot]')")


def _presets(args: argparse.Namespace) -> int:
    from fastmeta.rl.presets import preset_names, preset_summary

    for name in preset_names():
        print(f"{name:<28} {preset_summary(name)}")
    return 0


def _envs(args: argparse.Namespace) -> int:
    from fastmeta.rl.environments import ENVIRONMENTS

    for spec in ENVIRONMENTS.values():
        missing = spec.missing()
        note = f" [needs pip install 'fastmeta[{spec.extra}]']" if missing else ""
        print(f"{spec.name:<20} {spec.about}{note}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fastmeta.rl.plots import plot_runs

    for path in plot_runs(args.runs, report=args.report, out=args.out):
        print(f"wrote {path}")
    return 0


def _gif(args: argparse.Namespace) -> int:
    from fastmeta.rl.gif import adapted_gif

    path = adapted_gif(args.run_dir, task=args.task, steps=args.steps, out=args.out)
    print(f"wrote {path}")
    return 0


def _metaworld_eval(args: argparse.Namespace) -> int:
    from fastmeta.rl.metaworld_tasks import metaworld_evaluation

    result = metaworld_evaluation(args.run_dir, evals=args.evals)
    print(
        f"Meta-World meta-test: success rate {result['success_rate']:.3f}, mean return "
        f"{result['mean_return']:.1f}; per task {result['per_task']}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastmeta.rl COMMAND ...``: the ``fastmeta rl`` commands on their own."""
    parser = argparse.ArgumentParser(prog="python -m fastmeta.rl", description=__doc__)
    _add_commands(parser.add_subparsers(dest="rl_command", required=True))
    args = parser.parse_args(argv)
    from fastmeta.train.signals import Interrupted

    try:
        status: int = args.handler(args)
    except Interrupted as stop:
        print(f"fastmeta rl {args.rl_command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (ValueError, OSError, ImportError) as error:
        print(f"fastmeta rl {args.rl_command}: {error}", file=sys.stderr)
        return 2
    return status
