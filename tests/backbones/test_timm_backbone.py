"""timm backbones: the input spec from pretrained_cfg, pooled features or the map, the refusals
(an unknown architecture, weights that cannot be fetched, timm missing or broken).

The first tests run on a stand-in written to timm's documented API (tests/backbones/tiny.py),
so they run where timm cannot be imported (this machine: its torchvision does not load against
torch 2.13.0+cpu); the last ones use timm itself and skip, saying why, where it does not import.
"""

from __future__ import annotations

import sys

import pytest
import torch

from fastmeta.backbones.errors import BackboneError, MissingExtra
from fastmeta.backbones.extras import import_extra
from fastmeta.backbones.network import BackboneNetwork
from fastmeta.models.build import build_network
from fastmeta.run_config import ModelConfig
from tests.backbones.tiny import FAKE_CFG, fake_timm, real_timm


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", fake_timm())


def build(name="timm:fake_net", output="embedding", shape=(3, 16, 16), **settings):
    return build_network(ModelConfig(name=name, **settings), shape, output, 5)


def test_the_input_comes_from_pretrained_cfg(stand_in):
    network = build()
    assert isinstance(network, BackboneNetwork)
    assert network.spec.size == FAKE_CFG["input_size"][1:]
    assert network.spec.mean == FAKE_CFG["mean"] and network.spec.std == FAKE_CFG["std"]
    assert build(input_size=24).spec.size == (24, 24)


def test_outputs(stand_in):
    x = torch.rand(4, 1, 12, 12)  # grey, another size: repeated and resized inside
    assert build(shape=(1, 12, 12))(x).shape == (4, 8)
    assert build(output="logits", shape=(1, 12, 12))(x).shape == (4, 5)
    assert build(output="feature_map", shape=(1, 12, 12))(x).shape == (4, 8, 4, 4)


def test_an_unknown_architecture_is_refused(stand_in):
    with pytest.raises(BackboneError, match="timm 0-fake has no such architecture"):
        build("timm:resnet9000")


def test_pretrained_without_internet_says_so_and_suggests_weights(stand_in):
    with pytest.raises(BackboneError) as error:
        build(pretrained=True)
    message = str(error.value)
    assert "could not fetch the weights of fake_net" in message and "model.weights=PATH" in message
    assert "\n" not in message


def test_four_channel_images_are_refused(stand_in):
    with pytest.raises(BackboneError, match="takes images of 3 channels"):
        build(shape=(4, 16, 16))


def test_timm_missing_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ModuleNotFoundError
    with pytest.raises(MissingExtra, match=r"needs timm: pip install 'fastmeta\[timm\]'"):
        build()


def test_a_package_that_fails_to_import_says_why():
    with pytest.raises(MissingExtra) as error:
        import_extra("tests.backbones.broken_extra", "timm", "model.name=timm:x")
    message = str(error.value)
    assert "installed but fails to import (RuntimeError: operator torchvision::nms" in message
    assert "torchvision is installed but does not load against this torch" in message


@pytest.mark.parametrize("architecture", ["test_resnet", "test_vit"])
def test_real_timm_models(architecture):
    timm = real_timm()
    if architecture not in timm.list_models():
        pytest.skip(f"timm {timm.__version__} has no {architecture}")
    network = build(f"timm:{architecture}", input_size=32)
    x = torch.rand(2, 3, 28, 28)
    assert network(x).shape == (2, network.backbone.num_features)
    assert build(f"timm:{architecture}", "logits", input_size=32)(x).shape == (2, 5)
    cfg = network.backbone.pretrained_cfg
    assert network.spec.mean == tuple(cfg["mean"]) and network.spec.std == tuple(cfg["std"])
    if architecture == "test_vit":
        with pytest.raises(BackboneError, match="Relation Networks need a convolutional backbone"):
            build(f"timm:{architecture}", "feature_map", input_size=32)(x)
    else:
        assert build(f"timm:{architecture}", "feature_map", input_size=32)(x).dim() == 4


def test_real_timm_weights_round_trip(tmp_path):
    timm = real_timm()
    if "test_resnet" not in timm.list_models():
        pytest.skip(f"timm {timm.__version__} has no test_resnet")
    published = timm.create_model("test_resnet", num_classes=10)  # with its classifier
    torch.save(published.state_dict(), tmp_path / "w.pt")
    network = build("timm:test_resnet", weights=str(tmp_path / "w.pt"))
    for key, value in network.backbone.state_dict().items():
        assert torch.equal(value, published.state_dict()[key]), key
