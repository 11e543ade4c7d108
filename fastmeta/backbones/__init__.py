"""Pretrained backbones from timm and Hugging Face transformers, as ``model.name`` choices.

``model.name=timm:<architecture>`` or ``model.name=hf:<model id or config.json path>`` puts
such a network under any method; :func:`build_backbone` wraps it so that it takes images in
[0, 1] (resized and normalised as the backbone expects) and gives what the method asks for.
``model.weights``, ``model.pretrained`` and ``model.freeze`` apply to every network. timm and
transformers are optional extras, imported only when a backbone of theirs is built; the
modules are imported on first use (see :mod:`fastmeta.lazy`), so the configuration's check of
a name stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from fastmeta.backbones.build import build_backbone as build_backbone
    from fastmeta.backbones.errors import BackboneError as BackboneError
    from fastmeta.backbones.errors import MissingExtra as MissingExtra
    from fastmeta.backbones.freeze import freeze as freeze
    from fastmeta.backbones.network import BackboneNetwork as BackboneNetwork
    from fastmeta.backbones.network import InputSpec as InputSpec
    from fastmeta.backbones.weights import load_weights as load_weights

_WHERE = {
    "BackboneError": "errors",
    "BackboneNetwork": "network",
    "InputSpec": "network",
    "MissingExtra": "errors",
    "build_backbone": "build",
    "freeze": "freeze",
    "load_weights": "weights",
}
__all__ = list(_WHERE)
__getattr__ = lazy_attributes(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})
