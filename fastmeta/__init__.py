"""fastmeta: fast, correct meta-learning for PyTorch."""

from fastmeta import algorithms
from fastmeta.algorithms import *  # noqa: F403  (the one list of public algorithms)
from fastmeta.predict import load
from fastmeta.tasks import Task, TaskBatch

__version__ = "0.1.0"

__all__ = [*algorithms.__all__, "Task", "TaskBatch", "load"]
