"""Stopping a training run mid-way, as a crash would, for the exact-resume tests."""

from __future__ import annotations

from fastmeta.train.trainer import Trainer


class Interrupted(Exception):
    """Raised in place of the meta-step a run is interrupted at."""


def interrupt_at(trainer: Trainer, step: int) -> None:
    """Make ``trainer`` raise :class:`Interrupted` when it is about to train ``step``."""
    original = trainer.train_step

    def failing_step() -> object:
        if trainer.progress.step == step:
            raise Interrupted
        return original()

    trainer.train_step = failing_step  # type: ignore[method-assign]
