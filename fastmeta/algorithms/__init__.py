"""Meta-learning algorithms: each maps a TaskBatch to a MetaOutput.

``__all__`` is the one list of public algorithm names (``fastmeta`` re-exports it).
"""

from fastmeta.algorithms.anil import ANIL, BOIL
from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.algorithms.baseline import TransferBaseline
from fastmeta.algorithms.cavia import CAVIA
from fastmeta.algorithms.imaml import IMAML
from fastmeta.algorithms.maml import MAML, Learner
from fastmeta.algorithms.mamlpp import MAMLPlusPlus
from fastmeta.algorithms.matching import MatchingNetwork
from fastmeta.algorithms.metaoptnet import MetaOptNet
from fastmeta.algorithms.metasgd import MetaSGD
from fastmeta.algorithms.protonet import PrototypicalNetwork
from fastmeta.algorithms.relation import RelationNetwork
from fastmeta.algorithms.reptile import Reptile

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
    "TransferBaseline",
]
