"""Meta-learning algorithms: each maps a TaskBatch to a MetaOutput."""

from fastmeta.algorithms.base import MetaLearner, MetaOutput
from fastmeta.algorithms.maml import MAML, Learner

__all__ = ["MAML", "Learner", "MetaLearner", "MetaOutput"]
