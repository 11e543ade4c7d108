"""``model.name=timm:<architecture>``: a timm model without its classifier.

Written against timm's documented API: ``timm.create_model(name, pretrained=, num_classes=0)``
gives the pooled features ``[N, model.num_features]``, ``model.forward_features`` the unpooled
map, and ``model.pretrained_cfg`` the input size (``input_size`` ``(C, H, W)``), ``mean``,
``std`` and ``classifier`` (the head's name in a published checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.extras import timm_module
from fastmeta.backbones.network import IMAGENET_MEAN, IMAGENET_STD, InputSpec, Output


def create_timm(architecture: str, pretrained: bool) -> nn.Module:
    """``timm.create_model(architecture, num_classes=0)``, with its published weights when
    ``pretrained`` (fetched by timm; without internet a one-line error)."""
    timm = timm_module(f"model.name=timm:{architecture}")
    if architecture not in timm.list_models():
        raise BackboneError(
            f"model.name=timm:{architecture}: timm {timm.__version__} has no such architecture "
            "(timm.list_models('*pattern*') lists them)"
        )
    try:
        model: nn.Module = timm.create_model(architecture, pretrained=pretrained, num_classes=0)
    except (OSError, RuntimeError, ValueError) as error:
        if not pretrained:
            raise
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BackboneError(
            f"model.pretrained=true: timm could not fetch the weights of {architecture} "
            f"({type(error).__name__}: {first}); with no internet here, download them "
            "elsewhere and pass model.weights=PATH (and model.pretrained=false)"
        ) from None
    return model


def unfuse_attention(model: nn.Module) -> None:
    """Turn off timm's fused attention (``fused_attn`` of its attention layers): its CPU kernel
    has no second derivative, which MAML's second-order meta-gradient needs."""
    for module in model.modules():
        if isinstance(getattr(module, "fused_attn", None), bool):
            setattr(module, "fused_attn", False)  # noqa: B010  # typed as a Module attribute


def timm_input_spec(model: nn.Module) -> InputSpec:
    """The input ``model.pretrained_cfg`` describes (ImageNet's statistics and 224 pixels
    where it says nothing)."""
    cfg: Mapping[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    channels, height, width = cfg.get("input_size", (3, 224, 224))
    mean = tuple(float(m) for m in cfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(s) for s in cfg.get("std", IMAGENET_STD))
    if len(mean) != channels:
        mean, std = mean[:1] * channels, std[:1] * channels
    return InputSpec((int(height), int(width)), mean, std, "timm pretrained_cfg")


def timm_classifier_keys(model: nn.Module) -> tuple[str, ...]:
    """The state-dict prefixes of the classifier a published checkpoint carries (dropped when
    loading it into the headless model)."""
    cfg: Mapping[str, Any] = getattr(model, "pretrained_cfg", None) or {}
    classifier = cfg.get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names)


def timm_features(output: Output) -> Any:
    """The function from ``(model, images)`` to what ``output`` needs: pooled features, or
    ``forward_features``' map for a feature map (a convolutional network's only)."""
    if output != "feature_map":
        return _pooled
    return _feature_map


def _pooled(model: nn.Module, x: Tensor) -> Tensor:
    out: Tensor = model(x)
    return out.flatten(1)


def _feature_map(model: nn.Module, x: Tensor) -> Tensor:
    out: Tensor = model.forward_features(x)  # type: ignore[operator]  # timm's own method
    if out.dim() != 4:
        raise BackboneError(
            f"{type(model).__name__}.forward_features gives {tuple(out.shape)} (tokens), not a "
            "[N, C, H, W] feature map: Relation Networks need a convolutional backbone"
        )
    return out


def timm_feature_dim(model: nn.Module) -> int:
    """``model.num_features``: the size of its pooled features."""
    return int(getattr(model, "num_features"))  # noqa: B009  # timm's attribute, untyped
