"""fastmeta: fast, correct meta-learning for PyTorch."""

from fastmeta.algorithms import (
    CAVIA,
    IMAML,
    MAML,
    Learner,
    MAMLPlusPlus,
    MatchingNetwork,
    MetaLearner,
    MetaOptNet,
    MetaOutput,
    RelationNetwork,
    TransferBaseline,
)
from fastmeta.algorithms.protonet import PrototypicalNetwork
from fastmeta.predict import load
from fastmeta.tasks import Task, TaskBatch

__version__ = "0.1.0"

__all__ = [
    "CAVIA",
    "IMAML",
    "MAML",
    "Learner",
    "MAMLPlusPlus",
    "MatchingNetwork",
    "MetaLearner",
    "MetaOptNet",
    "MetaOutput",
    "PrototypicalNetwork",
    "RelationNetwork",
    "Task",
    "TaskBatch",
    "TransferBaseline",
    "load",
]
