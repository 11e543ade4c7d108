"""Meta-learning algorithms: each maps a TaskBatch to a MetaOutput.

``__all__`` is the one list of public algorithm names (``fastmeta`` re-exports it); the
modules are imported on first use (see :mod:`fastmeta.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from fastmeta.algorithms.anil import ANIL as ANIL
    from fastmeta.algorithms.anil import BOIL as BOIL
    from fastmeta.algorithms.base import MetaLearner as MetaLearner
    from fastmeta.algorithms.base import MetaOutput as MetaOutput
    from fastmeta.algorithms.baseline import TransferBaseline as TransferBaseline
    from fastmeta.algorithms.cavia import CAVIA as CAVIA
    from fastmeta.algorithms.imaml import IMAML as IMAML
    from fastmeta.algorithms.maml import MAML as MAML
    from fastmeta.algorithms.maml import Learner as Learner
    from fastmeta.algorithms.mamlpp import MAMLPlusPlus as MAMLPlusPlus
    from fastmeta.algorithms.matching import MatchingNetwork as MatchingNetwork
    from fastmeta.algorithms.metaoptnet import MetaOptNet as MetaOptNet
    from fastmeta.algorithms.metasgd import MetaSGD as MetaSGD
    from fastmeta.algorithms.protonet import PrototypicalNetwork as PrototypicalNetwork
    from fastmeta.algorithms.relation import RelationNetwork as RelationNetwork
    from fastmeta.algorithms.reptile import Reptile as Reptile

_WHERE = {
    "ANIL": "anil",
    "BOIL": "anil",
    "CAVIA": "cavia",
    "IMAML": "imaml",
    "MAML": "maml",
    "Learner": "maml",
    "MAMLPlusPlus": "mamlpp",
    "MatchingNetwork": "matching",
    "MetaLearner": "base",
    "MetaOptNet": "metaoptnet",
    "MetaOutput": "base",
    "MetaSGD": "metasgd",
    "PrototypicalNetwork": "protonet",
    "RelationNetwork": "relation",
    "Reptile": "reptile",
    "TransferBaseline": "baseline",
}
__all__ = list(_WHERE)
__getattr__ = lazy_attributes(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})
