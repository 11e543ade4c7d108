"""Meta-learning algorithms: each maps a TaskBatch to a MetaOutput."""

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.algorithms.maml import MAML, Learner
from fastmeta.algorithms.matching import MatchingNetwork
from fastmeta.algorithms.metaoptnet import MetaOptNet
from fastmeta.algorithms.relation import RelationNetwork

__all__ = [
    "MAML",
    "Learner",
    "MatchingNetwork",
    "MetaLearner",
    "MetaOptNet",
    "MetaOutput",
    "RelationNetwork",
]
