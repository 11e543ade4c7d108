"""Ctrl-C and SIGTERM during training: finish the current meta-step, checkpoint, then stop.

Inside :class:`StopRequests`, the first SIGINT or SIGTERM is recorded instead of killing the
process; the training loop asks :attr:`StopRequests.signal` after every step, saves a checkpoint
and raises :class:`Interrupted`, whose message says how to continue. A second SIGINT interrupts
at once (the checkpoint of the last completed save is then the one to resume from).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Training stopped at ``step`` on ``signal`` after saving a checkpoint of that step."""

    def __init__(self, step: int, signum: int, run: str) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted ({name}) at step {step}; the run is saved: continue with "
            f"`fastmeta train --resume {run}`"
        )
        self.step = step
        self.signum = signum
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports


class StopRequests:
    """Record SIGINT / SIGTERM within the ``with`` block (main thread only; elsewhere signals
    keep their usual effect)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal = signum
