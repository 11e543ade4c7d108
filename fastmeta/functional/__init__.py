"""The pure, vmappable engine: functions over parameter dictionaries."""

from fastmeta.functional.batched import map_tasks, plan
from fastmeta.functional.inner import adapt, descend, step_lr, update
from fastmeta.functional.params import functional_forward, module_state, select_adaptable

__all__ = [
    "adapt",
    "descend",
    "functional_forward",
    "map_tasks",
    "module_state",
    "plan",
    "select_adaptable",
    "step_lr",
    "update",
]
