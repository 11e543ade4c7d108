"""The run directory: every file a run keeps, where it lives, and how a run is started or opened.

A run directory holds ``config.yaml`` (the resolved configuration), ``split.yaml`` (an image
folder's class split), ``checkpoints/`` (see :mod:`fastmeta.run.checkpoint`), ``metrics.csv``
and ``metrics.jsonl``, the test reports ``<name>.json`` and ``<name>_episodes.csv``, pictures and
TensorBoard logs. Training, evaluation and inference all reach these files through
:class:`RunDirectory`, so their names and the rules for creating and opening a run live here
alone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastmeta.config import dump_yaml, to_dict
from fastmeta.run import checkpoint as checkpoints
from fastmeta.run_config import RunConfig, read_run_config, upgrade_legacy

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.yaml"
LOCK_FILE = ".lock"
HISTORY_FILE = "history.jsonl"
REPORT = "report"
# what a run writes at the top of its directory (a folder holding one of these is not refused as
# a stranger's, and --force never writes over one of a user's)
_RUN_FILES = (
    CONFIG_FILE, SPLIT_FILE, HISTORY_FILE, "metrics.jsonl", "metrics.csv", "report.json",
    "report_episodes.csv", "curves.png", "adapted_curves.png", "tensorboard",
)  # fmt: skip
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

    @property
    def history_file(self) -> Path:
        return self.path / HISTORY_FILE

    # ----------------------------------------------------------------- starting and opening
    def holds_run(self) -> bool:
        return self.config_file.exists()

    def refuse_existing(self, force: bool = False) -> None:
        """Refuse a directory that holds a run, or other files unless ``force``.

        A run is never started over a run (resume it) nor over a folder of someone's own files
        (``force`` allows that, but not when one of them has a name a run writes, which would
        be overwritten or deleted).
        """
        if self.holds_run():
            raise FileExistsError(
                f"{self.path} already holds a run; continue it with `fastmeta train --resume "
                f"{self.path}` or choose another --out directory"
            )
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise FileExistsError(f"{self.path} is a file, not a folder: choose another --out")
        present = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)
        if not present:
            return
        clashing = [name for name in present if name in _RUN_FILES]
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            clashing.append(checkpoints.CHECKPOINT_DIR + "/")
        if clashing:
            raise FileExistsError(
                f"{self.path} holds {', '.join(clashing)}, which a run would overwrite; choose "
                "another --out directory (nothing was written)"
            )
        if not force:
            shown = ", ".join(present[:3]) + (", ..." if len(present) > 3 else "")
            raise FileExistsError(
                f"{self.path} is not empty ({shown}) and holds no run; choose another --out "
                "directory, or add --force to put the run beside those files (none is changed)"
            )

    def create(self, config: RunConfig, force: bool = False, split: str | None = None) -> None:
        """Start a run here with ``config`` and an image folder's class ``split`` (the text of
        ``split.yaml``), under its lock; see :meth:`refuse_existing`."""
        with self.lock():
            self.refuse_existing(force)
            if split is not None:
                write_atomic(self.split_file, split)
            write_atomic(self.config_file, dump_yaml(config))

    def write_config(self, config: RunConfig) -> None:
        """Replace the run's configuration (a resume that changed settings)."""
        write_atomic(self.config_file, dump_yaml(config))

    def record(self, event: Mapping[str, Any]) -> None:
        """Append ``event`` (with the time) to the run's history (``history.jsonl``)."""
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **event}
        with self.history_file.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def history(self) -> list[dict[str, Any]]:
        """The events recorded so far (settings changed on resume), oldest first."""
        if not self.history_file.is_file():
            return []
        lines = self.history_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock while writing it: a second writer (another ``train`` on the same
        ``--out``, a ``--resume`` of a run still training) is refused with the first's process
        and host. A lock left by a process that died is taken over (the kernel released it)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.path / LOCK_FILE, f"{self.path} is being written"):
            yield

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
        self,
        step: int,
        state: dict[str, Any],
        keep: int,
        expected: dict[str, Any],
        protect: int | None = None,
    ) -> Path:
        return checkpoints.save_checkpoint(
            self.path, step, state, keep, fingerprint=expected, protect=protect
        )

    def set_aside_after(self, step: int) -> list[Path]:
        """Set aside the checkpoints written after ``step`` (see
        :func:`~fastmeta.run.checkpoint.set_aside_after`)."""
        return checkpoints.set_aside_after(self.path, step)

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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader (or a
    crash) never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


_HELD: set[Path] = set()  # the locks this process holds (a lock held is held again freely)


@contextmanager
def hold_lock(path: Path, what: str) -> Iterator[None]:
    """An exclusive lock on ``path`` (``flock``; released when the process exits, also by
    ``kill -9``), with this process's id and host written inside for the message a second
    writer gets. Re-entrant within one process."""
    import fcntl

    key = path.resolve()
    if key in _HELD:
        yield
        return
    handle = open(path, "a+")  # noqa: SIM115  (held open for the duration of the lock)
    _HELD.add(key)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FileExistsError(
                f"{what} by {holder}; wait for it to finish (or stop it) before writing the run"
            ) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"process {os.getpid()} on {socket.gethostname()} (since {started})")
        handle.flush()
        yield
    finally:
        _HELD.discard(key)
        handle.close()
