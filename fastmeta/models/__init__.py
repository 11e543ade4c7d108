"""Reference networks of the few-shot literature."""

from fastmeta.models.conv4 import Conv4
from fastmeta.models.mlp import MLP

__all__ = ["MLP", "Conv4"]
