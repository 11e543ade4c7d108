"""The processes of a distributed run: who this one is, the process group, and loud collectives.

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``) starts one process per device. :func:`distributed_session` joins them into
one process group (gloo for CPU tensors, NCCL for CUDA tensors) with a timeout, so a rank that
dies or stops answering makes every other rank raise :class:`PeerFailureError` within that time
instead of waiting forever. Without those variables it is a single process and every collective
here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 300.0
_CPU = torch.device("cpu")
T = TypeVar("T")


class PeerFailureError(RuntimeError):
    """A collective operation failed: another process died, or did not answer in time."""

    def __init__(self, rank: int, world_size: int, action: str, timeout_s: float | None) -> None:
        waited = f"within {timeout_s:g} s" if timeout_s is not None else "in time"
        super().__init__(
            f"process {rank} of {world_size} stopped while {action}: another process exited or "
            f"did not answer {waited}, so the whole run stops (its own error, if any, is in its "
            "log). Checkpoints up to the last one are kept: resume with the same launch command "
            "and `fastmeta train --resume RUN_DIR`, on any number of processes."
        )
        self.rank = rank


class MainProcessError(RuntimeError):
    """Rank 0 failed in work only it does (reading or writing the run directory)."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: ``rank`` of ``world_size``, GPU ``local_rank``.

    ``timeout_s`` is how long a collective waits for the other processes (``None`` when the
    process group was created elsewhere with a timeout this object does not know).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout_s: float | None = DEFAULT_TIMEOUT_S

    @property
    def active(self) -> bool:
        """True when there are other processes to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the only process that reads and writes the run directory."""
        return self.rank == 0

    @classmethod
    def current(cls) -> Distributed:
        """The initialised process group of this process, or a single process."""
        if _session is not None:
            return _session
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), None)

    def device(self, device: torch.device) -> torch.device:
        """``device`` for this process: a CUDA run uses GPU ``local_rank``."""
        if self.active and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def all_reduce_sum(self, tensor: torch.Tensor, action: str) -> torch.Tensor:
        """Sum ``tensor`` over all processes, in place; ``action`` names it in errors."""
        if self.active:
            self._guard(lambda: dist.all_reduce(tensor, op=dist.ReduceOp.SUM), action)
        return tensor

    def broadcast_object(self, value: Any, action: str) -> Any:
        """Rank 0's ``value`` (any picklable object), on every process."""
        if not self.active:
            return value
        box = [value if self.is_main else None]
        self._guard(lambda: dist.broadcast_object_list(box, src=0, device=_CPU), action)
        return box[0]

    def all_gather_object(self, value: Any, action: str) -> list[Any]:
        """Every process's ``value``, by rank, on every process."""
        if not self.active:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        self._guard(lambda: dist.all_gather_object(gathered, value), action)
        return gathered

    def on_main(self, work: Callable[[], T], action: str) -> T:
        """Run ``work`` on rank 0 only and hand its result, or its error, to every process.

        Every rank then fails together when rank 0 cannot read or write the run directory,
        instead of the others waiting for it. Built-in errors (``FileExistsError``,
        ``ValueError``...) keep their type; others arrive as :class:`MainProcessError`.
        """
        if not self.active:
            return work()
        result: Any = None
        error: Exception | None = None
        if self.is_main:
            try:
                result = work()
            except Exception as caught:  # handed to the other ranks, then raised here too
                error = caught
        portable = None if error is None else (_portable_type(error), str(error))
        sent = self.broadcast_object((None, portable) if error else (result, None), action)
        if error is not None:
            raise error
        if sent[1] is not None:
            kind, message = sent[1]
            raise kind(message)
        value: T = result if self.is_main else sent[0]  # rank 0's ``work()``, sent to every rank
        return value

    def _guard(self, collective: Callable[[], Any], action: str) -> None:
        try:
            collective()
        except RuntimeError as err:  # gloo and NCCL report peer loss and timeouts this way
            raise PeerFailureError(self.rank, self.world_size, action, self.timeout_s) from err


_session: Distributed | None = None


@contextmanager
def distributed_session(timeout_s: float | None = None) -> Iterator[Distributed]:
    """Join the processes started by ``torchrun`` for the duration of the ``with`` block.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with none set (or ``WORLD_SIZE=1``) it
    yields a single process and starts nothing. Collectives, and the start-up rendezvous, give
    up after ``timeout_s`` seconds (default :data:`DEFAULT_TIMEOUT_S`).
    """
    global _session
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
    if timeout_s <= 0:
        raise ValueError(f"the distributed timeout must be positive seconds, got {timeout_s}")
    rank, world_size, local_rank = _launch_environment()
    if world_size == 1 or _session is not None:
        yield _session or Distributed(timeout_s=timeout_s)
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    this = Distributed(rank, world_size, local_rank, timeout_s)
    this._guard(
        lambda: dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s)),
        "joining the other processes (check MASTER_ADDR, MASTER_PORT and that every process "
        "started)",
    )
    _session = this
    try:
        yield this
        # No process tears the group down while another still uses it (seen as a gloo thread
        # aborting the process at exit).
        this._guard(dist.barrier, "finishing together")
    finally:
        _session = None
        dist.destroy_process_group()


def _launch_environment() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the launcher's variables, checked."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE={world_size}: it must be at least 1")
    if world_size > 1 and "RANK" not in os.environ:
        raise ValueError(
            f"WORLD_SIZE={world_size} is set but RANK is not; start the processes with torchrun "
            "(or set RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each)"
        )
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size})")
    return rank, world_size, _env_int("LOCAL_RANK", 0)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer") from None


def _portable_type(error: Exception) -> type[Exception]:
    """The type another process can raise for ``error``: built-ins as they are."""
    kind = type(error)
    return kind if kind.__module__ == "builtins" else MainProcessError
