"""model.weights: safetensors and torch state dicts load (safely) into any network, and a file
that does not fit is refused in one line naming the keys and shapes; nothing is loaded then."""

from __future__ import annotations

import collections
import sys

import pytest
import torch

from fastmeta.backbones.errors import BackboneError
from fastmeta.models.build import build_network
from fastmeta.run_config import ModelConfig
from tests.backbones.tiny import fake_timm

IMAGE = (1, 16, 16)


def conv4(**settings):
    return build_network(ModelConfig(name="conv4", hidden=4, **settings), IMAGE, "embedding", 5)


def same(a, b):
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_a_torch_state_dict_loads(tmp_path):
    torch.manual_seed(0)
    source = conv4()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(1)
    assert not same(conv4(), source)
    assert same(conv4(weights=str(tmp_path / "w.pt")), source)


def test_nested_and_data_parallel_state_dicts_load(tmp_path):
    source = conv4()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "w.pth")
    assert same(conv4(weights=str(tmp_path / "w.pth")), source)


def test_a_safetensors_file_loads(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    source = conv4()
    safetensors.save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    assert same(conv4(weights=str(tmp_path / "w.safetensors")), source)


def test_missing_unexpected_and_misshapen_keys_are_listed(tmp_path):
    state = collections.OrderedDict(conv4().state_dict())
    missing = next(iter(state))
    del state[missing]
    state["extra.weight"] = torch.zeros(1)
    state["features.1.0.weight"] = torch.zeros(4, 4, 5, 5)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(BackboneError) as error:
        conv4(weights=str(tmp_path / "bad.pt"))
    message = str(error.value)
    assert "\n" not in message
    assert f"1 missing key ({missing})" in message
    assert "1 unexpected key (extra.weight)" in message
    assert (
        "1 shape mismatch (features.1.0.weight: file [4, 4, 5, 5], model.name=conv4 [4, 4, 3, 3])"
        in message
    )


class NotWeights:
    pass


def test_a_pickle_with_code_is_refused(tmp_path):
    torch.save({"state_dict": NotWeights()}, tmp_path / "code.pt")
    with pytest.raises(BackboneError, match="cannot be loaded safely as a torch state dict"):
        conv4(weights=str(tmp_path / "code.pt"))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(BackboneError, match="no such file"):
        conv4(weights=str(tmp_path / "none.pt"))


def test_a_published_timm_checkpoint_loads_without_its_classifier(tmp_path, monkeypatch):
    timm = fake_timm()
    monkeypatch.setitem(sys.modules, "timm", timm)
    published = timm.create_model("fake_net", num_classes=1000)  # with its fc head
    torch.save(published.state_dict(), tmp_path / "published.pt")
    config = ModelConfig(name="timm:fake_net", weights=str(tmp_path / "published.pt"))
    network = build_network(config, (3, 16, 16), "embedding", 5)
    for key, value in network.backbone.state_dict().items():
        assert torch.equal(value, published.state_dict()[key]), key


def test_pretrained_is_refused_for_a_builtin_network():
    with pytest.raises(BackboneError, match=r"model\.weights=PATH"):
        conv4(pretrained=True)


def _run_with(tmp_path, learner: dict[str, torch.Tensor], name: str = "run"):
    """A run directory whose one checkpoint holds ``learner`` as the algorithm's weights."""
    from fastmeta.run.checkpoint import save_checkpoint

    run = tmp_path / name
    save_checkpoint(run, 7, {"algorithm": learner, "progress": {"step": 7}})
    return run


def test_a_run_directory_gives_its_network(tmp_path):
    """A ProtoNets run's encoder, a Baseline run's backbone (its training classifier left out)
    and a MAML run's network without its head load from the run directory or a checkpoint."""
    source = conv4()
    encoder = {f"encoder.{k}": v for k, v in source.state_dict().items()}
    assert same(conv4(weights=str(_run_with(tmp_path, encoder, "proto"))), source)
    baseline = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    baseline["classifier.weight"] = torch.zeros(64, 4)
    run = _run_with(tmp_path, baseline, "baseline")
    checkpoint = next((run / "checkpoints").glob("step-*.pt"))
    assert same(conv4(weights=str(checkpoint)), source)
    maml = build_network(ModelConfig(name="conv4", hidden=4), IMAGE, "logits", 5)
    state = {f"model.{k}": v for k, v in maml.state_dict().items()}
    loaded = conv4(weights=str(_run_with(tmp_path, state, "maml")))
    assert all(torch.equal(v, maml.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_a_new_head_keeps_its_initialisation_when_a_run_has_none(tmp_path):
    source = conv4()
    run = _run_with(tmp_path, {f"encoder.{k}": v for k, v in source.state_dict().items()})
    torch.manual_seed(3)
    fresh = build_network(ModelConfig(name="conv4", hidden=4), IMAGE, "logits", 5)
    torch.manual_seed(3)
    loaded = build_network(
        ModelConfig(name="conv4", hidden=4, weights=str(run)), IMAGE, "logits", 5
    )
    assert torch.equal(loaded.head.weight, fresh.head.weight)
    assert torch.equal(loaded.features[0][0].weight, source.features[0][0].weight)


def test_a_folder_without_checkpoints_is_refused(tmp_path):
    with pytest.raises(BackboneError, match="folder with no fastmeta checkpoint"):
        conv4(weights=str(tmp_path))
