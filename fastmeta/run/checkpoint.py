"""Atomic, verified training checkpoints with a model/config fingerprint.

Layout: ``RUN_DIR/checkpoints/step-00001200.pt`` (the last ``keep`` are kept) and
``RUN_DIR/checkpoints/best.pt`` (chosen by validation, outside the rotation).

Why each piece exists:

- **Atomic writes.** A checkpoint is written to a temporary file in the same folder, flushed and
  fsynced, then renamed over its final name with ``os.replace`` and the folder is fsynced. A writer
  killed at any moment (even ``kill -9`` mid-write) therefore never damages a completed checkpoint;
  at worst it leaves a hidden ``.*.tmp`` file, which is ignored and removed by the next save. One
  process writes a run directory at a time (rank 0 in distributed runs).
- **Safe loading.** Files are read with ``torch.load(weights_only=True)``: no arbitrary unpickling,
  so a tampered file cannot run code. :func:`save_checkpoint` refuses, before writing anything, a
  state holding objects that such loading would reject (NumPy scalars, paths, custom classes).
- **Verified content.** torch's zip format does not check its CRCs, so flipped bytes in tensor data
  load silently. Every checkpoint stores a SHA-256 digest of its content; a mismatch, a truncated
  file or a non-fastmeta file raises :class:`CheckpointCorruptError`, which names the previous
  checkpoint.
- **Fingerprint.** The caller stores e.g. ``{"model": model_fingerprint(model), "config": cfg}``;
  ``load_checkpoint(..., expected=...)`` refuses to resume a different model or configuration with
  a :class:`CheckpointMismatchError` listing every difference.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointWriteError",
    "best_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest",
    "model_fingerprint",
    "save_best",
    "save_checkpoint",
]

FORMAT = "fastmeta.checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
_STEP_FILE = re.compile(r"^step-(\d{8,})\.pt$")
_TMP_SUFFIX = ".tmp"
_MAX_LISTED = 30

MapLocation = str | torch.device | None
Upgrade = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class CheckpointError(RuntimeError):
    """Base class of the errors raised when a checkpoint cannot be used."""


class CheckpointCorruptError(CheckpointError):
    """The file is truncated, damaged, tampered with, or not a fastmeta checkpoint."""

    def __init__(self, path: Path, reason: str, previous: Path | None = None) -> None:
        if previous is not None:
            advice = (
                f"The previous checkpoint {previous} can be used instead (load it, or delete "
                "this file and resume)."
            )
        else:
            advice = (
                "No earlier checkpoint lies beside it: restore the file from a backup or start "
                "a new run directory."
            )
        super().__init__(f"checkpoint {path} is corrupt or incomplete: {reason}. {advice}")
        self.path = path
        self.reason = reason
        self.previous = previous


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was written by a different model or configuration than the current run."""

    def __init__(self, path: Path, differences: list[str], message: str | None = None) -> None:
        shown = differences[:_MAX_LISTED]
        lines = "\n  ".join(shown)
        more = len(differences) - len(shown)
        if more:
            lines += f"\n  ... and {more} more"
        super().__init__(
            message
            or f"checkpoint {path} does not match the current run "
            f"({len(differences)} difference(s)):\n  {lines}\n"
            "Resume with the model and configuration this run was started with, or start a new "
            "run directory for the changed settings."
        )
        self.path = path
        self.differences = differences


def model_fingerprint(model: torch.nn.Module | Mapping[str, Any]) -> dict[str, list[int]]:
    """Names and shapes of a model's ``state_dict`` tensors (parameters and persistent buffers).

    Accepts a module or a state dict. Two models whose fingerprints are equal can load each
    other's weights; this is what ``expected["model"]`` is compared against on resume.
    """
    tensors = model.state_dict() if isinstance(model, torch.nn.Module) else model
    return {name: list(t.shape) for name, t in tensors.items() if isinstance(t, torch.Tensor)}


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The rotation checkpoints ``step-*.pt`` of ``run_dir``, oldest (lowest step) first.

    Temporary files of interrupted writes and ``best.pt`` are not listed.
    """
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STEP_FILE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest (highest-step) completed checkpoint of ``run_dir``, or ``None``.

    Files with a ``step-*.pt`` name only appear through an atomic rename of a fully written file,
    so they are complete; damage after writing is detected by :func:`load_checkpoint` (see
    :func:`load_latest` for falling back to an older one).
    """
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def step_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    """Where the rotation checkpoint of ``step`` lives."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def set_aside_after(run_dir: str | os.PathLike[str], step: int) -> list[Path]:
    """Rename the rotation checkpoints of steps after ``step`` to ``*.pt.diverged`` (kept, but
    no longer loaded), so resuming continues from ``step``; returns the new names."""
    moved = []
    for path in list_checkpoints(run_dir):
        match = _STEP_FILE.match(path.name)
        if match and int(match.group(1)) > step:
            target = path.with_name(path.name + ".diverged")
            os.replace(path, target)
            moved.append(target)
    return moved


def best_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """``RUN_DIR/checkpoints/best.pt`` if it exists, else ``None``."""
    path = Path(run_dir) / CHECKPOINT_DIR / BEST_NAME
    return path if path.is_file() else None


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    state: dict[str, Any],
    keep: int = 3,
    *,
    fingerprint: dict[str, Any] | None = None,
    protect: int | None = None,
) -> Path:
    """Atomically write ``RUN_DIR/checkpoints/step-{step:08d}.pt``; keep only the last ``keep``.

    ``state`` may hold tensors, dicts, lists, tuples, strings, ints, floats, bools and None (what
    ``torch.load(weights_only=True)`` reads back); anything else raises ``TypeError`` naming where
    it is, before anything is written. ``fingerprint`` (e.g. ``{"model": model_fingerprint(m),
    "config": resolved_config}``) is what :func:`load_checkpoint` compares ``expected`` against.

    After the write, older rotation checkpoints beyond the newest ``keep`` are deleted; the file
    just written is never deleted, nor the checkpoint of step ``protect`` (the last one written
    before a run began to diverge, say). Returns the path written.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    _checkpoint_dir(run_dir)  # created (and its parent synced) on first use
    path = step_path(run_dir, step)
    _write_atomic(path, _payload(step, state, fingerprint))
    spared = {path, step_path(run_dir, protect)} if protect is not None else {path}
    others = [p for p in list_checkpoints(run_dir) if p not in spared]
    for old in others[: max(0, len(others) - (keep - 1))]:
        old.unlink(missing_ok=True)
    return path


def save_best(
    run_dir: str | os.PathLike[str],
    state: dict[str, Any],
    *,
    step: int | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``RUN_DIR/checkpoints/best.pt``, outside the step rotation.

    Call it when validation improves; same content rules as :func:`save_checkpoint`.
    """
    directory = _checkpoint_dir(run_dir)
    path = directory / BEST_NAME
    _write_atomic(path, _payload(step, state, fingerprint))
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expected: Mapping[str, Any] | None = None,
    ignore: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    map_location: MapLocation = "cpu",
    upgrade: Upgrade | None = None,
) -> dict[str, Any]:
    """Read a checkpoint safely, verify it, and return the ``state`` that was saved.

    ``expected`` maps fingerprint sections to their current values (e.g. ``{"model":
    model_fingerprint(model), "config": resolved_config}``); nested dicts are compared key by key
    and every difference is listed in a :class:`CheckpointMismatchError`. Sections stored in the
    checkpoint but absent from ``expected`` are not checked. ``ignore`` lists dotted keys that may
    differ (e.g. ``"config.train.iterations"``); a key ignores everything below it. ``defaults``
    (shaped like ``expected``) lets a checkpoint written before a setting existed load: a key
    absent from the checkpoint matches when its current value is its default. ``upgrade`` maps
    a fingerprint written by an older version to the current layout before the comparison.

    Raises :class:`CheckpointCorruptError` for a truncated, damaged or tampered file (including
    one that ``weights_only`` loading refuses), ``FileNotFoundError`` when there is no file.
    """
    state, fingerprint = read_checkpoint(path, map_location)
    if expected is not None:
        check_fingerprint(path, fingerprint, expected, ignore, defaults, upgrade)
    return state


def read_checkpoint(
    path: str | os.PathLike[str], map_location: MapLocation = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, fingerprint)`` of a checkpoint file, read safely and verified, for a caller
    that needs the state before it can say what to expect (then :func:`check_fingerprint`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointCorruptError(
            path,
            "it holds objects that safe loading (torch.load(weights_only=True)) refuses, so it "
            f"was not written by save_checkpoint or was tampered with ({_short_error(err)})",
            _previous_checkpoint(path),
        ) from err
    except Exception as err:
        raise CheckpointCorruptError(
            path, f"it cannot be read ({_short_error(err)})", _previous_checkpoint(path)
        ) from err
    return verified_payload(path, payload)


def verified_payload(
    path: str | os.PathLike[str], payload: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, fingerprint)`` of a checkpoint already loaded (safely) from ``path``, verified
    as :func:`read_checkpoint` verifies it, for a caller that loaded the file to see what it is."""
    _verify(Path(path), payload)
    return payload["state"], payload["fingerprint"]


def check_fingerprint(
    path: str | os.PathLike[str],
    stored: Mapping[str, Any],
    expected: Mapping[str, Any],
    ignore: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    upgrade: Upgrade | None = None,
) -> None:
    """Raise :class:`CheckpointMismatchError` listing how ``stored`` (the fingerprint of the
    checkpoint at ``path``) differs from ``expected`` (see :func:`load_checkpoint`)."""
    if upgrade is not None:
        stored = upgrade(stored)
    differences = _differences(stored, expected, tuple(ignore), defaults or {})
    if differences:
        raise CheckpointMismatchError(Path(path), differences)


def load_latest(
    run_dir: str | os.PathLike[str],
    *,
    expected: Mapping[str, Any] | None = None,
    ignore: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    map_location: MapLocation = "cpu",
    upgrade: Upgrade | None = None,
) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest usable rotation checkpoint: ``(path, state)``, or ``None`` if there is none.

    A corrupt newest checkpoint is skipped with a ``RuntimeWarning`` naming it, and the one before
    is tried; if every checkpoint is corrupt a :class:`CheckpointCorruptError` of the newest says
    so (naming none of them as a fallback). A :class:`CheckpointMismatchError` is raised at once
    (older ones would differ too).
    """
    ignore = tuple(ignore)
    first_error: CheckpointCorruptError | None = None
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            state = load_checkpoint(
                path, expected=expected, ignore=ignore, defaults=defaults,
                map_location=map_location, upgrade=upgrade,
            )  # fmt: skip
        except CheckpointCorruptError as err:
            warnings.warn(f"skipping {err}", RuntimeWarning, stacklevel=2)
            first_error = first_error or err
            continue
        return path, state
    if first_error is not None:
        others = (
            f" and the {len(found) - 1} older one(s) beside it are" if len(found) > 1 else " is"
        )
        raise CheckpointCorruptError(
            first_error.path, f"it{others} unreadable (the newest: {first_error.reason})"
        )
    return None


# --- writing -------------------------------------------------------------------------------------


def _checkpoint_dir(run_dir: str | os.PathLike[str]) -> Path:
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(directory.parent)
    return directory


def _payload(
    step: int | None, state: dict[str, Any], fingerprint: dict[str, Any] | None
) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    fingerprint = {} if fingerprint is None else fingerprint
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": step,
        "fingerprint": fingerprint,
        "digest": _digest(step, fingerprint, state),
        "state": state,
    }


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Temp file in the same folder -> flush + fsync -> os.replace -> fsync the folder."""
    directory = path.parent
    for leftover in directory.glob(f".*{_TMP_SUFFIX}"):  # from writers killed mid-write
        leftover.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if _disk_full(error):
            free = shutil.disk_usage(directory).free / 2**20
            raise CheckpointWriteError(
                errno.ENOSPC,
                f"no space left on the disk to write checkpoint {path} ({free:.0f} MiB free); "
                "free some space, then resume the run (the checkpoints already written are "
                "intact)",
            ) from None
        raise
    _fsync_dir(directory)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (the disk is full); nothing written before is lost."""


def _disk_full(error: BaseException) -> bool:
    """Whether writing failed for want of space (torch's writer reports it as a RuntimeError
    saying "file write failed")."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return isinstance(error, RuntimeError) and "file write failed" in str(error)


def _fsync_dir(directory: Path) -> None:
    """Make a rename/creation inside ``directory`` durable (no-op where unsupported)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- content digest (also checks that the state is weights_only-loadable) ----------------------

_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def _digest(step: int | None, fingerprint: Any, state: Any) -> str:
    h = hashlib.sha256()
    _feed(h, step, "step")
    _feed(h, fingerprint, "fingerprint")
    _feed(h, state, "state")
    return h.hexdigest()


def _feed(h: Any, obj: Any, where: str) -> None:
    """Hash ``obj`` canonically; raise ``TypeError`` for types weights_only loading rejects."""
    kind = type(obj)
    if isinstance(obj, torch.Tensor):
        if obj.layout != torch.strided or obj.is_quantized:
            raise TypeError(f"{where} is a {obj.layout} / quantized tensor; store a dense tensor")
        t = obj.detach().cpu().resolve_conj().resolve_neg().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif kind in (dict, OrderedDict):
        h.update(f"D{len(obj)}|".encode())
        for key, value in obj.items():
            _feed(h, key, f"{where} key {key!r}")
            _feed(h, value, f"{where}[{key!r}]")
    elif kind in (list, tuple, torch.Size):
        h.update(f"{'L' if kind is list else 'U'}{len(obj)}|".encode())
        for i, value in enumerate(obj):
            _feed(h, value, f"{where}[{i}]")
    elif kind in _SCALARS:
        text = obj.hex() if kind is float else repr(obj)
        h.update(f"S{kind.__name__}{len(text)}|{text}".encode())
    elif kind in (torch.dtype, torch.device):
        h.update(f"O{obj}|".encode())
    else:
        raise TypeError(
            f"{where} is a {kind.__module__}.{kind.__qualname__}, which torch.load("
            "weights_only=True) cannot read back; store tensors, dicts, lists, tuples, str, int, "
            "float, bool or None (e.g. float(x) for a NumPy scalar, str(p) for a path)"
        )


# --- reading -------------------------------------------------------------------------------------


def _verify(path: Path, payload: Any) -> None:
    previous = _previous_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointCorruptError(
            path, "it is not a fastmeta checkpoint (no format marker)", previous
        )
    version = payload.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointCorruptError(path, f"invalid format version {version!r}", previous)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than the {FORMAT_VERSION} "
            "this fastmeta reads; upgrade fastmeta to load it"
        )
    missing = [k for k in ("step", "fingerprint", "digest", "state") if k not in payload]
    if missing:
        raise CheckpointCorruptError(path, f"sections {missing} are missing", previous)
    try:
        digest = _digest(payload["step"], payload["fingerprint"], payload["state"])
    except TypeError as err:
        raise CheckpointCorruptError(path, str(err), previous) from err
    if digest != payload["digest"]:
        raise CheckpointCorruptError(
            path, "its content does not match the digest stored when it was written", previous
        )


def _previous_checkpoint(path: Path) -> Path | None:
    """The newest rotation checkpoint beside ``path`` that is older than it (any, for best.pt)."""
    match = _STEP_FILE.match(path.name)
    limit = int(match.group(1)) if match else None
    candidates = []
    for sibling in path.parent.iterdir() if path.parent.is_dir() else ():
        m = _STEP_FILE.match(sibling.name)
        if m and sibling != path and (limit is None or int(m.group(1)) < limit):
            candidates.append((int(m.group(1)), sibling))
    return max(candidates)[1] if candidates else None


def _short_error(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = next((line for line in lines if "unsupported global" in line.lower()), None)
    text = useful or (lines[0] if lines else "")
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(err).__name__}: {text}"


# --- fingerprint comparison ----------------------------------------------------------------------


def _differences(
    stored: Any, expected: Mapping[str, Any], ignore: tuple[str, ...], defaults: Mapping[str, Any]
) -> list[str]:
    found: list[tuple[str, str]] = []
    stored = stored if isinstance(stored, Mapping) else {}
    for section, want in expected.items():
        if section not in stored:
            found.append((str(section), f"{section}: not recorded in the checkpoint"))
        else:
            _compare(stored[section], want, str(section), found, defaults.get(section))

    def ignored(key: str) -> bool:
        return any(key == pattern or key.startswith(pattern + ".") for pattern in ignore)

    return [text for key, text in found if not ignored(key)]


def _compare(
    saved: Any, current: Any, key: str, out: list[tuple[str, str]], default: Any = None
) -> None:
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        default = default if isinstance(default, Mapping) else {}
        for name in [*saved, *(k for k in current if k not in saved)]:
            sub = f"{key}.{name}"
            if name not in current:
                out.append((sub, f"{sub}: only in the checkpoint ({_show(saved[name])})"))
            elif name not in saved:
                if name in default and _normalize(default[name]) == _normalize(current[name]):
                    continue  # a setting added after the checkpoint was written, left at default
                out.append((sub, f"{sub}: only in the current run ({_show(current[name])})"))
            else:
                _compare(saved[name], current[name], sub, out, default.get(name))
    elif _normalize(saved) != _normalize(current):
        out.append((key, f"{key}: {_show(saved)} in the checkpoint, {_show(current)} now"))


def _normalize(value: Any) -> Any:
    """Compare tuples as lists, tensors by dtype/shape/values, and NaN equal to NaN."""
    if isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype), list(value.shape), value.tolist())
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _show(value: Any) -> str:
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 80 else text[:77] + "..."
