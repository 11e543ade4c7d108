"""Reference networks of the few-shot literature."""

from fastmeta.models.conv4 import Conv4
from fastmeta.models.mlp import MLP
from fastmeta.models.resnet12 import ResNet12

__all__ = ["MLP", "Conv4", "ResNet12"]
