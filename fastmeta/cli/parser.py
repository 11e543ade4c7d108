"""The ``fastmeta`` command's arguments: every sub-command, its options and its help.

Each sub-command stores its handler (``args.handler(args) -> exit status``); the handlers import
torch only when they run, so ``fastmeta --help``, ``presets`` and ``config`` start without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from fastmeta.datasets.commands import add_data_commands

FOLDER_PRESET = "protonet-folder"
Handler = Callable[[argparse.Namespace], int]

COMMON_KEYS = """common settings (key=value; `fastmeta config PRESET` shows them all, described):
  train.iterations=2000           meta-steps to train
  train.time_limit_minutes=30     stop after this much training time
  algorithm.inner_lr=0.4          inner learning rate (the gradient family)
  algorithm.inner_steps=5         inner steps in training (test: algorithm.test_inner_steps)
  algorithm.first_order=true      first-order MAML
  sampler.ways=5 sampler.shots=1  episodes; sampler.test_* for the test protocol
  sampler.meta_batch=16           episodes per meta-step
  optimizer.lr=1e-3               meta learning rate; optimizer.grad_clip=10 clips
  data.dataset=miniimagenet       any registered dataset (fastmeta data info NAME)
  data.image_size=84              image side in pixels
  device=cpu                      auto, cpu or cuda
  seed=1                          initial weights and training episodes"""


def _lazy(module: str, function: str) -> Handler:
    """A handler imported from ``fastmeta.cli.<module>`` when the command runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(f"fastmeta.cli.{module}"), function)
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    from fastmeta import __version__

    parser = argparse.ArgumentParser(
        prog="fastmeta", description="Fast, correct meta-learning for PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"fastmeta {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_training_commands(commands)
    _add_catalog_commands(commands)
    add_data_commands(commands)
    _add_inference_commands(commands)
    from fastmeta.rl.cli import add_rl_commands  # imports no torch either

    add_rl_commands(commands)
    return parser


def _add_training_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser(
        "train",
        help="meta-train a preset or YAML config, then test it",
        description="Meta-train, validate, checkpoint and test. Settings are key=value with "
        "dotted names. Nothing is written until the data, model and algorithm are built; "
        "Ctrl-C saves a checkpoint and says how to continue.",
        epilog=COMMON_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("preset", nargs="?", help="preset name (see `fastmeta presets`) or a .yaml")
    train.add_argument("overrides", nargs="*", metavar="key=value")
    train.add_argument("--out", type=Path, help="run directory (default runs/<name>)")
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR",
        help="continue this run; key=value may extend train.iterations, change learning "
        "rates, clipping, validation, logging and the test protocol (recorded in its history)",
    )  # fmt: skip
    train.add_argument(
        "--force", action="store_true",
        help="start the run in a --out folder that holds other files (none is changed)",
    )  # fmt: skip
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
    train.add_argument(
        "--backbone", metavar="NAME_OR_PATH",
        help="with --data: a pretrained network used frozen, no meta-training (minutes): "
        "timm:<arch> or hf:<id> (with model.pretrained=true or model.weights=PATH), or a "
        "fastmeta run directory, whose network it takes",
    )  # fmt: skip
    train.set_defaults(handler=_lazy("training", "train"))

    evaluate = commands.add_parser(
        "eval", help="test a run's model on fixed episodes (mean and 95%% CI)"
    )
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="test protocol changes, e.g. sampler.test_queries=15 eval.episodes=1000",
    )  # fmt: skip
    evaluate.add_argument(
        "--on",
        metavar="DATA",
        help="test on another dataset's test split: a dataset name or an image folder; "
        "data.* settings then describe it (transfer, cross-domain)",
    )
    evaluate.add_argument("--name", default="eval", help="report file name (default eval.json)")
    evaluate.add_argument("--final", action="store_true", help="use the last weights, not best")
    evaluate.add_argument(
        "--allow-untrained", action="store_true",
        help="score a run that has no checkpoint yet (its random initialisation)",
    )  # fmt: skip
    evaluate.set_defaults(handler=_lazy("training", "evaluate"))

    plot = commands.add_parser(
        "plot",
        help="draw a run's learning curves, or several runs against time (needs matplotlib)",
    )
    plot.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN")
    plot.add_argument(
        "--against-time",
        type=Path,
        metavar="PNG",
        help="draw the runs' validation accuracy against minutes of training into this picture",
    )
    plot.set_defaults(handler=_lazy("training", "plot"))

    reproduce = commands.add_parser("reproduce", help="run a set of presets and tabulate them")
    reproduce.add_argument("presets", nargs="*", help="preset names")
    reproduce.add_argument(
        "--family", metavar="NAME",
        help="every preset named <method>-NAME, e.g. omniglot-5w1s or miniimagenet-5w5s",
    )  # fmt: skip
    reproduce.add_argument(
        "--existing", action="store_true",
        help="train nothing: tabulate the runs in --out that have a report, list the others",
    )  # fmt: skip
    reproduce.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    reproduce.add_argument("--table", type=Path, help="also write the markdown table here")
    reproduce.add_argument("--no-progress", action="store_true")
    reproduce.set_defaults(handler=_lazy("training", "reproduce"))


def _add_catalog_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    presets = commands.add_parser(
        "presets", help="list the presets: what each reproduces, its length, its time here"
    )
    presets.set_defaults(handler=_lazy("catalog", "presets"))
    algorithms = commands.add_parser("algorithms", help="list the algorithms (algorithm.name)")
    algorithms.set_defaults(handler=_lazy("catalog", "algorithms"))
    config = commands.add_parser(
        "config",
        help="print a preset's resolved configuration, every key described",
        description="Print the configuration a `fastmeta train PRESET key=value ...` would run, "
        "as YAML with a comment describing every key (save it to start your own .yaml).",
    )
    config.add_argument("preset", help="preset name or a .yaml")
    config.add_argument("overrides", nargs="*", metavar="key=value")
    config.set_defaults(handler=_lazy("catalog", "config"))


def _add_inference_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    adapt = commands.add_parser(
        "adapt",
        help="adapt a trained run to new classes and label query images (CSV)",
        description="Adapt to the classes of SUPPORT (one sub-folder per class, a few images "
        "each) and write, for every query, the predicted class and its probability, the next "
        "most probable classes and each class's probability. Queries under folders named like "
        "the support classes (query/<class>/...) are scored: accuracy and a confusion matrix.",
    )
    adapt.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    adapt.add_argument("--support", type=Path, required=True, metavar="FOLDER")
    adapt.add_argument("--query", nargs="+", required=True, metavar="FOLDER_OR_FILE")
    adapt.add_argument("--out", type=Path, default=Path("predictions.csv"))
    adapt.add_argument(
        "--top-k", type=int, default=3, metavar="K",
        help="the K most probable classes of each query in the CSV (default 3)",
    )  # fmt: skip
    adapt.add_argument(
        "--contact-sheet", type=Path, metavar="PNG",
        help="also draw the queries with their predicted (and true) classes (needs matplotlib)",
    )  # fmt: skip
    adapt.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where to run (cpu)"
    )
    adapt.set_defaults(handler=_lazy("inference", "adapt"))
    export = commands.add_parser(
        "export",
        help="save a classifier for the support classes that runs with torch alone",
        description="Adapt to SUPPORT and save a torch.export program: images in [0, 1] in, "
        "class probabilities out (see docs/OWN_DATA.md for the loading snippet).",
    )
    export.add_argument("run", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    export.add_argument("--support", type=Path, required=True, metavar="FOLDER")
    export.add_argument("--out", type=Path, default=Path("classifier.pt2"))
    export.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="cpu",
        help="where to adapt (cpu); the saved program runs on the CPU",
    )  # fmt: skip
    export.set_defaults(handler=_lazy("inference", "export"))
