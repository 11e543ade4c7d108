"""learn2learn's ``algorithms``: the MAML, Meta-SGD and GBML wrappers on fastmeta's engine."""

from fastmeta.compat.learn2learn.algorithms.gbml import GBML, GBMLLearner
from fastmeta.compat.learn2learn.algorithms.maml import (
    MAML,
    MAMLLearner,
    MetaSGD,
    MetaSGDLearner,
    maml_update,
    meta_sgd_update,
)

__all__ = [
    "GBML",
    "MAML",
    "GBMLLearner",
    "MAMLLearner",
    "MetaSGD",
    "MetaSGDLearner",
    "maml_update",
    "meta_sgd_update",
]
