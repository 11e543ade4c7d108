"""A ``timm:`` or ``hf:`` ``model`` section -> a :class:`BackboneNetwork` shaped for its method."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.freeze import freeze
from fastmeta.backbones.names import external
from fastmeta.backbones.network import BackboneNetwork, InputSpec, Output, Preprocess
from fastmeta.backbones.weights import load_weights
from fastmeta.run_config import ModelConfig


def build_backbone(
    config: ModelConfig, input_shape: tuple[int, ...], output: Output, outputs: int
) -> BackboneNetwork:
    """The backbone ``config.name`` names, taking images of ``input_shape`` in [0, 1] and
    giving an embedding, a feature map, or ``outputs`` logits (a new linear head); then
    ``config.weights`` loaded into the backbone and ``config.freeze`` applied."""
    parsed = external(config.name)
    if parsed is None:
        raise ValueError(f"model.name={config.name} is not a timm: or hf: backbone")
    library, what = parsed
    prefixes: tuple[str, ...]
    ignore: tuple[str, ...]
    if library == "timm":
        from fastmeta.backbones import timm_backbone as t

        backbone = t.create_timm(what, config.pretrained)
        if output == "logits":  # the gradient family: second derivatives through attention
            t.unfuse_attention(backbone)
        spec = t.timm_input_spec(backbone)
        features = t.timm_features(output)
        prefixes, ignore = (), t.timm_classifier_keys(backbone)
    else:
        from fastmeta.backbones import hf_backbone as h

        backbone, spec = h.create_hf(what, config.pretrained, eager=output == "logits")
        features = h.hf_features(output)
        prefixes, ignore = h.hf_prefixes(backbone), ()
    if config.input_size is not None:
        spec = replace(spec, size=(config.input_size, config.input_size), source="model.input_size")
    _check_channels(config.name, input_shape, spec)
    if config.weights is not None:
        load_weights(backbone, config.weights, prefixes, ignore, what=config.name)
    dim = _feature_dim(backbone, features, spec) if output == "logits" else 0
    network = BackboneNetwork(backbone, features, spec, output, dim, outputs, config.name)
    return freeze(network, config.freeze)  # type: ignore[return-value]  # the same object


def _check_channels(name: str, input_shape: tuple[int, ...], spec: InputSpec) -> None:
    channels = len(spec.mean)
    if len(input_shape) != 3 or input_shape[0] not in (1, channels):
        raise BackboneError(
            f"model.name={name} takes images of {channels} channels (grey ones are repeated); "
            f"the data gives examples of shape {input_shape}"
        )


def _feature_dim(backbone: nn.Module, features: object, spec: InputSpec) -> int:
    """The size of the backbone's embedding, from one forward of two zero images."""
    preprocess = Preprocess(spec)
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = features(backbone, preprocess(torch.zeros(2, len(spec.mean), *spec.size)))  # type: ignore[operator]
    finally:
        backbone.train(training)
    return int(out.shape[-1])
