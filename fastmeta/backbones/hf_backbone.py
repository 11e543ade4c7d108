"""``model.name=hf:<model id or config.json path>``: a Hugging Face transformers vision model.

A path (a ``config.json`` file, or a folder holding one) builds the model of that
configuration with random weights (``model.weights`` then loads a file); a hub id needs
``model.pretrained=true`` (or the id in the local hub cache) and internet. Vision models that
need no torchvision (DINOv2, ViT, CLIP's vision tower, ResNet, ...) work; a configuration with a
``vision_config`` (CLIP, SigLIP) gives its vision tower. The input size and normalisation come
from the image processor's ``preprocessor_config.json`` beside the configuration (its
``crop_size`` or ``size``, ``image_mean``, ``image_std``), else the configuration's
``image_size`` and ImageNet's statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from fastmeta.backbones.errors import BackboneError, MissingExtra
from fastmeta.backbones.extras import transformers_module
from fastmeta.backbones.network import IMAGENET_MEAN, IMAGENET_STD, InputSpec, Output


def config_file(what: str) -> Path | None:
    """The ``config.json`` that ``what`` names on disk, or ``None`` when it is a hub id."""
    path = Path(what).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackboneError(f"model.name=hf:{what}: the folder holds no config.json")
        return path / "config.json"
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise BackboneError(f"model.name=hf:{what}: no such file")
        return path
    return None


def create_hf(what: str, pretrained: bool, eager: bool = False) -> tuple[nn.Module, InputSpec]:
    """The vision model ``what`` names and the input it expects; ``eager`` asks for the plain
    attention implementation, which (unlike fused SDPA kernels on a CPU) differentiates twice,
    as MAML's second-order meta-gradient needs."""
    why = f"model.name=hf:{what}"
    transformers = transformers_module(why)
    local = config_file(what)
    try:
        if local is not None:
            config = _read_config(transformers, local)
            if eager:
                config._attn_implementation = "eager"
            model = _model_class(transformers, config)
            built: nn.Module = (
                model.from_pretrained(str(local.parent), config=config)
                if pretrained
                else model(config)
            )
            processor = _read_json(local.parent / "preprocessor_config.json")
        else:
            built, config, processor = _from_hub(transformers, what, pretrained, eager)
    except ImportError as error:  # transformers' model code failed to import
        raise MissingExtra(
            f"{why}: transformers could not import its model code ({error}); if torchvision is "
            "installed, it must be the build for this torch (or uninstall torchvision)"
        ) from None
    return built, hf_input_spec(config, processor)


def _from_hub(
    transformers: Any, what: str, pretrained: bool, eager: bool
) -> tuple[nn.Module, Any, dict[str, Any]]:
    if not pretrained:
        raise BackboneError(
            f"model.name=hf:{what} is a hub id: add model.pretrained=true to fetch its weights, "
            "or give a config.json path (random weights, or model.weights=PATH)"
        )
    try:
        config = transformers.AutoConfig.from_pretrained(what)
        config = getattr(config, "vision_config", None) or config
        extra = {"attn_implementation": "eager"} if eager else {}
        model = _model_class(transformers, config).from_pretrained(what, **extra)
        processor = _hub_processor(what)
    except OSError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BackboneError(
            f"model.pretrained=true: transformers could not fetch {what} ({first}); with no "
            "internet here, save the model elsewhere (model.save_pretrained(FOLDER)) and pass "
            "model.name=hf:FOLDER, or a config.json path with model.weights=PATH"
        ) from None
    return model, config, processor


def _hub_processor(what: str) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download

    try:
        return _read_json(Path(hf_hub_download(what, "preprocessor_config.json")))
    except Exception:  # a model without a processor file: the configuration's size is used
        return {}


def _read_config(transformers: Any, path: Path) -> Any:
    values = _read_json(path)
    kind = values.pop("model_type", None)
    if not kind:
        raise BackboneError(f"model.name=hf:{path}: the configuration has no model_type")
    try:
        config = transformers.AutoConfig.for_model(kind, **values)
    except ValueError as error:
        raise BackboneError(f"model.name=hf:{path}: {error}".splitlines()[0]) from None
    return getattr(config, "vision_config", None) or config


def _model_class(transformers: Any, config: Any) -> Any:
    try:
        return transformers.AutoModel._model_mapping[type(config)]
    except KeyError:
        raise BackboneError(
            f"transformers has no model for configuration {type(config).__name__}"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(values, dict):
        raise BackboneError(f"{path} must hold a JSON object")
    return values


def hf_input_spec(config: Any, processor: dict[str, Any]) -> InputSpec:
    """The input size and statistics of the image processor's settings ``processor`` (the
    centre crop if it crops, else its resize), falling back on ``config.image_size`` (224 when
    absent) and ImageNet's statistics."""
    size = _side(processor.get("crop_size")) if processor.get("do_center_crop") else None
    size = size or _side(processor.get("size")) or _side(getattr(config, "image_size", None))
    channels = int(getattr(config, "num_channels", 3))
    mean = tuple(float(m) for m in processor.get("image_mean") or IMAGENET_MEAN)
    std = tuple(float(s) for s in processor.get("image_std") or IMAGENET_STD)
    if len(mean) != channels:
        mean, std = mean[:1] * channels, std[:1] * channels
    source = "preprocessor_config.json" if processor else "the model configuration"
    return InputSpec(size or (224, 224), mean, std, source)


def _side(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return None


def hf_features(output: Output) -> Any:
    """The function from ``(model, pixel_values)`` to what ``output`` needs: the pooled output
    (DINOv2's and CLIP's normalised class token, ViT's pooler, ResNet's pooled map), or the
    last hidden state as a feature map (a convolutional model's only)."""
    return _hf_feature_map if output == "feature_map" else _hf_pooled


def _hf_pooled(model: nn.Module, x: Tensor) -> Tensor:
    out = model(pixel_values=x)
    pooled: Tensor | None = getattr(out, "pooler_output", None)
    if pooled is None:
        hidden: Tensor = out.last_hidden_state
        pooled = hidden[:, 0] if hidden.dim() == 3 else hidden.mean((-2, -1))
    return pooled.flatten(1)


def _hf_feature_map(model: nn.Module, x: Tensor) -> Tensor:
    hidden: Tensor = model(pixel_values=x).last_hidden_state
    if hidden.dim() != 4:
        raise BackboneError(
            f"{type(model).__name__} gives tokens {tuple(hidden.shape)}, not a [N, C, H, W] "
            "feature map: Relation Networks need a convolutional backbone (e.g. ResNet)"
        )
    return hidden


def hf_prefixes(model: nn.Module) -> tuple[str, ...]:
    """The prefix a transformers checkpoint of a model with a task head puts before the
    backbone's keys (its ``base_model_prefix``)."""
    prefix = getattr(model, "base_model_prefix", "")
    return (f"{prefix}.",) if isinstance(prefix, str) and prefix else ()
