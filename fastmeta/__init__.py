"""fastmeta: fast, correct meta-learning for PyTorch."""

from fastmeta.algorithms import (
    ANIL,
    BOIL,
    CAVIA,
    IMAML,
    MAML,
    Learner,
    MAMLPlusPlus,
    MatchingNetwork,
    MetaLearner,
    MetaOptNet,
    MetaOutput,
    MetaSGD,
    RelationNetwork,
    Reptile,
    TransferBaseline,
)
from fastmeta.algorithms.protonet import PrototypicalNetwork
from fastmeta.predict import load
from fastmeta.tasks import Task, TaskBatch

__version__ = "0.1.0"

__all__ = [
    "ANIL",
    "BOIL",
    "CAVIA",
    "IMAML",
    "MAML",
    "Learner",
    "MAMLPlusPlus",
    "MatchingNetwork",
    "MetaLearner",
    "MetaOptNet",
    "MetaOutput",
    "MetaSGD",
    "PrototypicalNetwork",
    "RelationNetwork",
    "Reptile",
    "Task",
    "TaskBatch",
    "TransferBaseline",
    "load",
]
