"""fastmeta: fast, correct meta-learning for PyTorch.

The public names are imported on first use (see :mod:`fastmeta.lazy`), so ``import fastmeta``
and the command line's help start without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta import algorithms
from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from fastmeta.algorithms import *  # noqa: F403  (the one list of public algorithms)
    from fastmeta.predict import load as load
    from fastmeta.tasks import Task as Task
    from fastmeta.tasks import TaskBatch as TaskBatch

__version__ = "0.1.0"

_WHERE = {
    **{name: "fastmeta.algorithms" for name in algorithms.__all__},
    "Task": "fastmeta.tasks",
    "TaskBatch": "fastmeta.tasks",
    "load": "fastmeta.predict",
}
__all__ = list(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
