"""learn2learn's ``nn``: Kronecker layers, few-shot heads and small helper modules."""

from fastmeta.compat.learn2learn.nn.classifiers import PrototypicalClassifier, SVClassifier
from fastmeta.compat.learn2learn.nn.kroneckers import KroneckerLinear, KroneckerLSTM, KroneckerRNN
from fastmeta.compat.learn2learn.nn.misc import Flatten, Lambda, Scale, freeze, unfreeze

__all__ = [
    "Flatten",
    "KroneckerLSTM",
    "KroneckerLinear",
    "KroneckerRNN",
    "Lambda",
    "PrototypicalClassifier",
    "SVClassifier",
    "Scale",
    "freeze",
    "unfreeze",
]
