"""model.freeze: none, all, or up to and including a named block."""

from __future__ import annotations

import sys

import pytest

from fastmeta.backbones.errors import BackboneError
from fastmeta.models.build import build_network
from fastmeta.run_config import ModelConfig
from tests.backbones.tiny import fake_timm


def trainable(network):
    return [n for n, p in network.named_parameters() if p.requires_grad]


def conv4(freeze):
    return build_network(
        ModelConfig(name="conv4", hidden=4, freeze=freeze), (1, 16, 16), "logits", 5
    )


def test_none_and_all():
    assert trainable(conv4("none")) == [n for n, _ in conv4("none").named_parameters()]
    assert trainable(conv4("all")) == []


def test_a_block_freezes_it_and_everything_before_it():
    names = [n for n, _ in conv4("none").named_parameters()]
    left = trainable(conv4("features.1"))
    assert left and all(not n.startswith(("features.0.", "features.1.")) for n in left)
    assert left == names[len(names) - len(left) :]


def test_an_unknown_block_is_refused_with_the_blocks():
    with pytest.raises(
        BackboneError,
        match=r"names no block of the network; use none, all, or one of .*features\.0",
    ):
        conv4("layer9")


def test_a_frozen_backbone_keeps_its_statistics_and_its_head_trains(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", fake_timm())
    config = ModelConfig(name="timm:fake_net", freeze="all")
    network = build_network(config, (3, 16, 16), "logits", 5).train()
    assert not network.backbone.training  # BatchNorm statistics stay as loaded
    assert trainable(network) == ["head.weight", "head.bias"]


def test_a_backbone_block_prefix(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", fake_timm())
    config = ModelConfig(name="timm:fake_net", freeze="stages.0")
    network = build_network(config, (3, 16, 16), "embedding", 5)
    assert trainable(network) == ["backbone.stages.1.0.weight", "backbone.stages.1.0.bias"]
    assert network.train().backbone.training
