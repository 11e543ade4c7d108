"""The pure, vmappable engine: functions over parameter dictionaries."""

from fastmeta.functional.batched import map_tasks, resolve_strategy
from fastmeta.functional.inner import adapt, step_lr
from fastmeta.functional.params import functional_forward, module_state, select_adaptable

__all__ = [
    "adapt",
    "functional_forward",
    "map_tasks",
    "module_state",
    "resolve_strategy",
    "select_adaptable",
    "step_lr",
]
