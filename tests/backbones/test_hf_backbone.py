"""Hugging Face transformers backbones, on tiny random models built from configurations written
here: the input from preprocessor_config.json (else the configuration), the pooled output or a
map, CLIP's vision tower, weights with a task model's prefix, and the refusals. They need
transformers and safetensors (``pip install 'fastmeta[hf]'``) and skip, saying why, without."""

from __future__ import annotations

import json

import pytest
import torch

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.network import IMAGENET_MEAN
from fastmeta.models.build import build_network
from fastmeta.run_config import ModelConfig
from tests.backbones.tiny import TINY, hf_folder, transformers_or_skip

PROCESSOR = {
    "do_center_crop": True, "crop_size": {"height": 24, "width": 24},
    "size": {"shortest_edge": 28}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25],
}  # fmt: skip


@pytest.fixture(scope="module")
def transformers():
    return transformers_or_skip()


def build(folder, output="embedding", shape=(3, 16, 16), **settings):
    return build_network(ModelConfig(name=f"hf:{folder}", **settings), shape, output, 5)


@pytest.mark.parametrize("kind", ["dinov2", "vit", "clip_vision_model", "resnet"])
def test_tiny_models_embed_and_classify(transformers, tmp_path, kind):
    folder = hf_folder(tmp_path, kind)
    network = build(folder)
    x = torch.rand(3, 1, 16, 16)
    width = TINY[kind].get("hidden_size") or TINY[kind]["hidden_sizes"][-1]
    assert network(x).shape == (3, width)
    assert build(folder, "logits")(x).shape == (3, 5)
    assert network.spec.mean == IMAGENET_MEAN
    assert network.spec.size == ((16, 16) if "image_size" in TINY[kind] else (224, 224))


def test_the_input_comes_from_the_image_processor(transformers, tmp_path):
    folder = hf_folder(tmp_path, "dinov2", PROCESSOR)
    spec = build(folder).spec
    assert spec.size == (24, 24) and spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25,) * 3
    assert spec.source == "preprocessor_config.json"
    assert build(folder / "config.json").spec == spec  # the file itself names it too


def test_clip_gives_its_vision_tower(transformers, tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    config = {"model_type": "clip", "vision_config": TINY["clip_vision_model"], "text_config": {
        "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8,
    }}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    network = build(folder)
    assert type(network.backbone).__name__ == "CLIPVisionModel"
    assert network(torch.rand(2, 3, 16, 16)).shape == (2, 16)


def test_feature_maps(transformers, tmp_path):
    assert build(hf_folder(tmp_path, "resnet"), "feature_map", input_size=32)(
        torch.rand(2, 3, 32, 32)
    ).shape == (2, 12, 4, 4)
    with pytest.raises(BackboneError, match="Relation Networks need a convolutional backbone"):
        build(hf_folder(tmp_path, "vit"), "feature_map")(torch.rand(2, 3, 16, 16))


def test_weights_of_a_task_model_load_into_the_backbone(transformers, tmp_path):
    from safetensors.torch import save_file

    folder = hf_folder(tmp_path, "dinov2")
    source = build(folder).backbone
    state = {f"dinov2.{k}": v for k, v in source.state_dict().items()}
    state["classifier.weight"] = torch.zeros(10, 32)  # Dinov2ForImageClassification's head
    save_file(state, str(tmp_path / "task.safetensors"))
    torch.manual_seed(123)
    loaded = build(folder, weights=str(tmp_path / "task.safetensors")).backbone
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_weights_of_another_size_are_refused(transformers, tmp_path):
    small = hf_folder(tmp_path / "a", "dinov2")
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "config.json").write_text(
        json.dumps(
            {"model_type": "dinov2", **TINY["dinov2"], "hidden_size": 8, "intermediate_size": 16}
        )
    )
    torch.save(build(wide).backbone.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(
        BackboneError, match=r"shape mismatch.*embeddings\.cls_token: file \[1, 1, 8\]"
    ):
        build(small, weights=str(tmp_path / "wide.pt"))


def test_a_hub_id_without_pretrained_is_refused(transformers):
    with pytest.raises(BackboneError, match=r"add model\.pretrained=true"):
        build("facebook/dinov2-small")


def test_a_folder_without_a_configuration_is_refused(transformers, tmp_path):
    with pytest.raises(BackboneError, match=r"holds no config\.json"):
        build(tmp_path)
