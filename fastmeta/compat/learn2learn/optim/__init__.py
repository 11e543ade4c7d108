"""learn2learn's ``optim``: learned update rules for differentiable optimisation."""

from fastmeta.compat.learn2learn.optim import transforms
from fastmeta.compat.learn2learn.optim.learnable_optimizer import LearnableOptimizer
from fastmeta.compat.learn2learn.optim.parameter_update import ParameterUpdate
from fastmeta.compat.learn2learn.optim.transforms import (
    KroneckerTransform,
    MetaCurvatureTransform,
    ModuleTransform,
    ReshapedTransform,
    TransformDictionary,
)
from fastmeta.compat.learn2learn.optim.update_rules import DifferentiableSGD

__all__ = [
    "DifferentiableSGD",
    "KroneckerTransform",
    "LearnableOptimizer",
    "MetaCurvatureTransform",
    "ModuleTransform",
    "ParameterUpdate",
    "ReshapedTransform",
    "TransformDictionary",
    "transforms",
]
