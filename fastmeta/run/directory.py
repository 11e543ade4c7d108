"""The run directory: every file a run keeps, where it lives, and how a run is started or opened.

A run directory holds ``config.yaml`` (the resolved configuration), ``split.yaml`` (an image
folder's class split), ``checkpoints/`` (see :mod:`fastmeta.run.checkpoint`), ``metrics.csv``
and ``metrics.jsonl``, the test reports ``<name>.json`` and ``<name>_episodes.csv``, pictures and
TensorBoard logs. Training, evaluation and inference all reach these files through
:class:`RunDirectory`, so their names and the rules for creating and opening a run live here
alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastmeta.config import dump_yaml, to_dict
from fastmeta.run import checkpoint as checkpoints
from fastmeta.run_config import RunConfig, read_run_config, upgrade_legacy

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.yaml"
REPORT = "report"
if TYPE_CHECKING:
    from torch import nn

DEFAULTS = {"config": to_dict(RunConfig())}
"""Settings a checkpoint written before they existed lacks: they match at these values."""


def fingerprint(algorithm: nn.Module, config: RunConfig) -> dict[str, Any]:
    """What a checkpoint of this run records, and what it must match to be loaded into it."""
    return {"model": checkpoints.model_fingerprint(algorithm), "config": to_dict(config)}


def upgrade_fingerprint(stored: Mapping[str, Any]) -> Mapping[str, Any]:
    """A checkpoint fingerprint written by fastmeta 0.1, with its configuration in today's
    layout (see :func:`~fastmeta.run_config.upgrade_legacy`)."""
    config = stored.get("config")
    if not isinstance(config, Mapping):
        return stored
    return {**stored, "config": upgrade_legacy(config)}


class RunDirectory:
    """The files of the run in ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunDirectory:
        """The run of a run directory, or of a checkpoint file in its ``checkpoints/``."""
        path = Path(path).expanduser()
        if path.is_file() and path.parent.name == checkpoints.CHECKPOINT_DIR:
            return cls(path.parent.parent)
        return cls(path)

    # ----------------------------------------------------------------- where things are
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def split_file(self) -> Path:
        return self.path / SPLIT_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / checkpoints.CHECKPOINT_DIR

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    def report(self, name: str = REPORT) -> Path:
        """The test report ``<name>.json``."""
        return self.path / f"{name}.json"

    def episodes(self, name: str = REPORT) -> Path:
        """The per-episode test scores ``<name>_episodes.csv``."""
        return self.path / f"{name}_episodes.csv"

    def picture(self, name: str) -> Path:
        """A picture of the run, ``<name>.png``."""
        return self.path / f"{name}.png"

    # ----------------------------------------------------------------- starting and opening
    def holds_run(self) -> bool:
        return self.config_file.exists()

    def refuse_existing(self) -> None:
        """Raise ``FileExistsError`` when this directory already holds a run."""
        if self.holds_run():
            raise FileExistsError(
                f"{self.path} already holds a run; continue it with `fastmeta train --resume "
                f"{self.path}` or choose another --out directory"
            )

    def create(self, config: RunConfig) -> None:
        """Start a run here with ``config``; refuses a directory that already holds one."""
        self.refuse_existing()
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(dump_yaml(config))

    def read_config(self) -> RunConfig:
        """The run's configuration (also one written by fastmeta 0.1)."""
        if not self.config_file.is_file():
            raise FileNotFoundError(
                f"{self.path} holds no {CONFIG_FILE}: it is not a run directory (give the folder "
                "`fastmeta train` wrote, or a checkpoint in its checkpoints/ folder)"
            )
        return read_run_config(self.config_file.read_text(), where=str(self.config_file))

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoint(
        self, step: int, state: dict[str, Any], keep: int, expected: dict[str, Any]
    ) -> Path:
        return checkpoints.save_checkpoint(self.path, step, state, keep, fingerprint=expected)

    def save_best(self, state: dict[str, Any], step: int, expected: dict[str, Any]) -> Path:
        return checkpoints.save_best(self.path, state, step=step, fingerprint=expected)

    def load_latest(
        self, expected: Mapping[str, Any], ignore: Iterable[str] = ()
    ) -> tuple[Path, dict[str, Any]] | None:
        """The newest usable checkpoint ``(path, state)`` matching ``expected``, or ``None``."""
        return checkpoints.load_latest(
            self.path, expected=expected, ignore=ignore, defaults=DEFAULTS,
            upgrade=upgrade_fingerprint,
        )  # fmt: skip

    def load_best(
        self, expected: Mapping[str, Any], ignore: Iterable[str] = ()
    ) -> dict[str, Any] | None:
        """The state of ``best.pt`` (matching ``expected``), or ``None`` when there is none."""
        path = checkpoints.best_checkpoint(self.path)
        if path is None:
            return None
        return checkpoints.load_checkpoint(
            path, expected=expected, ignore=ignore, defaults=DEFAULTS,
            upgrade=upgrade_fingerprint,
        )  # fmt: skip

    def weights_file(self) -> Path | None:
        """The checkpoint inference uses: ``best.pt``, else the newest, else ``None``."""
        return checkpoints.best_checkpoint(self.path) or checkpoints.latest_checkpoint(self.path)
