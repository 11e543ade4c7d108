"""The network of a run's ``model`` section, shaped for what its algorithm needs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.freeze import freeze
from fastmeta.backbones.names import external
from fastmeta.backbones.weights import load_weights
from fastmeta.models.conv4 import Conv4
from fastmeta.models.mlp import MLP
from fastmeta.models.relation import relation_encoder
from fastmeta.models.resnet12 import ResNet12
from fastmeta.run_config import ModelConfig

Output = Literal["logits", "embedding", "feature_map"]


def build_network(
    config: ModelConfig, input_shape: tuple[int, ...], output: Output, outputs: int
) -> nn.Module:
    """``config``'s network for inputs of ``input_shape``: ``outputs`` logits (a head with one
    output per way, or per regression target), an embedding vector, or a spatial feature map
    (for a ``conv4``, Sung et al.'s Relation Network encoder); a ``timm:`` or ``hf:`` backbone
    (:mod:`fastmeta.backbones`) otherwise. ``model.weights`` and ``model.freeze`` apply to
    every network, and so does ``model.memory_format``."""
    network = _network(config, input_shape, output, outputs)
    if config.memory_format == "channels_last":
        # 4-d weights only, the rest is kept; torch's stubs omit the keyword Module.to takes
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return network


def _network(
    config: ModelConfig, input_shape: tuple[int, ...], output: Output, outputs: int
) -> nn.Module:
    if external(config.name) is not None:
        from fastmeta.backbones.build import build_backbone

        return build_backbone(config, input_shape, output, outputs)
    if config.pretrained or config.input_size is not None:
        raise BackboneError(
            f"model.pretrained and model.input_size apply to timm:/hf: backbones; {config.name} "
            "has no published weights (load your own with model.weights=PATH)"
        )
    network = _builtin(config, input_shape, output, outputs)
    if config.weights is not None:
        load_weights(network, config.weights, what=f"model.name={config.name}")
    return freeze(network, config.freeze)


def _builtin(
    config: ModelConfig, input_shape: tuple[int, ...], output: Output, outputs: int
) -> nn.Module:
    m = config
    metric = output != "logits"
    if m.name == "resnet12":
        return ResNet12(
            input_shape[0], None if metric else outputs, m.channels,
            feature_map=output == "feature_map", drop_rate=m.drop_rate,
            drop_block_size=m.drop_block_size,
        )  # fmt: skip
    if m.drop_rate:
        raise ValueError(
            f"model.drop_rate (DropBlock) applies to model.name=resnet12, not {m.name}; set it to 0"
        )
    if output == "feature_map" and m.name == "conv4":
        return relation_encoder(input_shape[0], m.hidden)
    if m.name == "mlp":
        return MLP(input_shape[0], list(m.layers), m.hidden if metric else outputs, init=m.init)
    return Conv4(
        in_channels=input_shape[0],
        out_features=None if metric else outputs,
        hidden=m.hidden,
        downsample=m.downsample,
    )
