"""Small backbones for the tests: a stand-in for timm written to timm's documented API (so the
timm path runs where timm cannot be imported), transformers (when it imports) and tiny random
transformers configurations written to a folder."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest
from torch import Tensor, nn

FAKE_CFG = {
    "input_size": (3, 16, 16),
    "mean": (0.5, 0.4, 0.3),
    "std": (0.2, 0.3, 0.4),
    "classifier": "fc",
}


class FakeTimmNet(nn.Module):
    """What ``timm.create_model(name, num_classes=...)`` returns: ``forward`` pooled features
    when ``num_classes=0`` (else logits of ``fc``), ``forward_features`` the map,
    ``num_features`` and ``pretrained_cfg``."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        )
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()),
        )
        self.num_features = 8
        self.num_classes = num_classes
        self.fc = nn.Linear(8, num_classes) if num_classes else nn.Identity()
        self.pretrained_cfg = dict(FAKE_CFG)

    def forward_features(self, x: Tensor) -> Tensor:
        out: Tensor = self.stages(self.stem(x))
        return out

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(self.forward_features(x).mean((2, 3)))
        return out


def fake_timm(fail_pretrained: bool = True) -> types.ModuleType:
    """A module with timm's ``create_model``, ``list_models`` and ``__version__``; fetching
    pretrained weights fails as it does without internet."""
    module = types.ModuleType("timm")
    module.__version__ = "0-fake"  # type: ignore[attr-defined]

    def create_model(name: str, pretrained: bool = False, num_classes: int = 1000) -> nn.Module:
        if pretrained and fail_pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
        return FakeTimmNet(num_classes)

    module.create_model = create_model  # type: ignore[attr-defined]
    module.list_models = lambda pattern="*": ["fake_net"]  # type: ignore[attr-defined]
    return module


def real_timm() -> types.ModuleType:
    """timm itself, or a skip saying why it cannot be imported here."""
    try:
        return importlib.import_module("timm")
    except Exception as error:  # not installed, or torchvision broken (RuntimeError)
        pytest.skip(f"timm cannot be imported here ({type(error).__name__}: {str(error)[:120]})")


def transformers_or_skip() -> types.ModuleType:
    """transformers with its vision models, or a skip saying why.

    transformers imports torchvision when it is installed; where the installed torchvision does
    not load against this torch (this machine: ``operator torchvision::nms does not exist``),
    the tests hide it, as on a machine without torchvision, which transformers' vision models
    do not need."""
    pytest.importorskip("safetensors")
    if "torchvision" not in sys.modules:
        try:
            importlib.import_module("torchvision")
        except ImportError:
            pass
        except Exception:  # installed but broken
            sys.modules["torchvision"] = None  # type: ignore[assignment]
    try:
        transformers = importlib.import_module("transformers")
        transformers.Dinov2Model  # noqa: B018
    except Exception as error:
        pytest.skip(
            f"transformers' vision models cannot be imported ({type(error).__name__}: "
            f"{str(error)[:120]})"
        )
    return transformers


TINY = {
    "dinov2": dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    ),
    "vit": dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    ),
    "clip_vision_model": dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    ),
    "resnet": dict(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic"),
}


def hf_folder(root: Path, kind: str, processor: dict[str, object] | None = None) -> Path:
    """A folder with the ``config.json`` of a tiny random ``kind`` model (and a
    ``preprocessor_config.json`` when ``processor`` is given)."""
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": kind, **TINY[kind]}))
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder
