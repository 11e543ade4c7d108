"""model.name: the built-in networks, timm:<arch> and hf:<id or path>; anything else refused
with the choices, before torch loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastmeta.backbones.names import check_model_name, external
from fastmeta.config import apply_overrides
from fastmeta.run_config import ModelConfig, RunConfig


def test_names_parse():
    assert external("conv4") is None
    assert external("timm:resnet18") == ("timm", "resnet18")
    assert external("hf:facebook/dinov2-small") == ("hf", "facebook/dinov2-small")
    assert external("hf:/a/b:c/config.json") == ("hf", "/a/b:c/config.json")
    assert external("torch:resnet") is None


@pytest.mark.parametrize(
    "name", ["conv4", "resnet12", "mlp", "timm:vit_small_patch16_224", "hf:x/y"]
)
def test_valid_names_pass(name):
    check_model_name(name)
    assert ModelConfig(name=name).name == name


CHOICES = "choose one of conv4, resnet12, mlp, timm:<architecture>"


@pytest.mark.parametrize("name", ["resnet18", "onnx:model"])
def test_other_names_are_refused_with_the_choices(name):
    with pytest.raises(ValueError, match=CHOICES):
        apply_overrides(RunConfig(), [f"model.name={name}"])


@pytest.mark.parametrize("name", ["timm:", "hf: "])
def test_a_library_without_a_model_is_refused(name):
    with pytest.raises(ValueError, match=CHOICES):
        ModelConfig(name=name)


def test_the_check_imports_no_torch():
    code = (
        "import sys; from fastmeta.run_config import ModelConfig; ModelConfig(name='timm:x'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
