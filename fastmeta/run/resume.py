"""What may change when a run is resumed, and checking a change against that.

``fastmeta train --resume RUN key=value`` may extend training, change learning rates, clipping,
validation, logging, checkpointing and the test protocol, and move the run to another device:
the weights and the data stay what they were trained on. Such a change is recorded in the run's
history; the run is then no longer bitwise equal to an uninterrupted one. Anything else (model,
data, the method, episodes) is refused, with every difference listed.
"""

from __future__ import annotations

from typing import Any

from fastmeta.config import to_dict
from fastmeta.run_config import RunConfig

RESUMABLE = (
    "train.iterations",
    "train.time_limit_minutes",
    "train.val_every",
    "train.val_episodes",
    "train.early_stop_patience",
    "train.target_accuracy",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.log_every",
    "optimizer.lr",
    "optimizer.grad_clip",
    "algorithm.inner_lr",
    "algorithm.test_inner_steps",
    "sampler.test_",
    "eval.",
    "device",
)
"""Keys (or prefixes ending in ``.`` or ``_``) a resume may change."""


def flat(config: RunConfig) -> dict[str, Any]:
    """Every setting of ``config`` by its dotted key (a method's or dataset's own included)."""
    found: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            found[prefix] = value

    walk("", to_dict(config))
    return found


def differences(saved: RunConfig, wanted: RunConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, wanted value)}`` for every setting the two differ in."""
    before, after = flat(saved), flat(wanted)
    keys = [*before, *(k for k in after if k not in before)]
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}


def resumable(key: str) -> bool:
    return any(key == allowed or (allowed[-1] in "._" and key.startswith(allowed))
               for allowed in RESUMABLE)  # fmt: skip


def check_changes(changed: dict[str, tuple[Any, Any]], learned_inner_lr: bool) -> None:
    """Refuse the changes a resume cannot make, listing each with its values.
    ``learned_inner_lr``: the method learns its inner rates (``inner_lr`` only set their start)."""
    refused = {k: v for k, v in changed.items() if not resumable(k)}
    why = "the checkpoints hold what was trained with the old ones"
    if learned_inner_lr and "algorithm.inner_lr" in changed:
        refused["algorithm.inner_lr"] = changed["algorithm.inner_lr"]
        why += "; this method learns its inner rates, algorithm.inner_lr only set their start"
    if refused:
        raise ValueError(
            f"these settings cannot change when a run is resumed: {describe(refused)} ({why}); "
            "start a new run with another --out, or resume without them"
        )


def describe(changed: dict[str, tuple[Any, Any]]) -> str:
    """``key old -> new; ...`` for a message."""
    return "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
