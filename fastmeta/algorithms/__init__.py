"""Meta-learning algorithms: each maps a TaskBatch to a MetaOutput.

``__all__`` is the one list of public algorithm names (``fastmeta`` re-exports it); the
modules are imported on first use (see :mod:`fastmeta.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
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
