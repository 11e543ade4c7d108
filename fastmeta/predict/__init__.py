"""Inference on new classes from a trained run: load, adapt to a support set, predict, export."""

from fastmeta.predict.images import Preprocessing
from fastmeta.predict.model import AdaptedClassifier, FewShotModel, Predictions, load

__all__ = ["AdaptedClassifier", "FewShotModel", "Predictions", "Preprocessing", "load"]
