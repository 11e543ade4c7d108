"""``model.weights=PATH``: a safetensors file or a torch state dict, loaded safely.

A ``.safetensors`` file is read with safetensors; anything else with
``torch.load(weights_only=True)``, which refuses pickled code. A checkpoint that nests its
weights under ``state_dict`` or ``model`` is unwrapped, and a key prefix that wraps the whole
backbone (``module.`` from DataParallel, a task model's ``vit.`` before a transformers
backbone) is removed; a published classifier (timm's ``head.``/``fc.``, keys outside the
backbone's prefix) is left out. Any other difference (a missing or unexpected key, a shape that
differs) is refused in one line that lists them, and the network is left unchanged.

A fastmeta run directory (its ``best.pt``, else its newest checkpoint) or one of its checkpoint
files gives the network of that run: the learner's weights under the prefix that names the
network (``encoder.``, ``backbone.``, ``model.``), without a classifier the network here does
not have (Baseline's training classifier, the gradient family's ways-wide head; a network
here with such a head keeps its initial one). This is how a
pretrained run starts the next stage (pretrain, then meta-train, docs/BACKBONES.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from fastmeta.backbones.errors import BackboneError
from fastmeta.backbones.extras import import_extra
from fastmeta.run.checkpoint import FORMAT

_SHOWN = 4


def read_state(path: str | Path) -> dict[str, Tensor]:
    """The tensors of ``path``, by name (a run's learner's, for a fastmeta run or checkpoint)."""
    file = Path(path).expanduser()
    if file.is_dir():
        return _run_state(path, file)
    if not file.is_file():
        raise BackboneError(f"model.weights={path}: no such file or run directory")
    if file.suffix == ".safetensors":
        safetensors = import_extra("safetensors.torch", "hf", f"model.weights={path}")
        try:
            state: object = safetensors.load_file(str(file))
        except Exception as error:  # safetensors raises its own error type
            raise BackboneError(
                f"model.weights={path} is not a readable safetensors file: {error}"
            ) from None
    else:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # a pickle with code, or not a torch file at all
            first = (str(error).strip().splitlines() or [""])[0]
            raise BackboneError(
                f"model.weights={path} cannot be loaded safely as a torch state dict "
                f"({type(error).__name__}: {first[:200]}); save it with "
                "torch.save(model.state_dict(), PATH) or as .safetensors"
            ) from None
    if isinstance(state, Mapping) and state.get("format") == FORMAT:
        return _run_state(path, file, state)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise BackboneError(
            f"model.weights={path} holds no state dict (a mapping of names to tensors)"
        )
    return {str(k): v for k, v in state.items()}


def fit_state(
    state: Mapping[str, Tensor],
    module: nn.Module,
    prefixes: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> dict[str, Tensor]:
    """``state`` renamed to ``module``'s keys: a prefix of ``("module.", *prefixes)`` that
    some keys carry is removed (keys without it are left out: a task head), keys starting with
    one of ``ignore`` are left out."""
    own = module.state_dict()
    state = dict(state)
    if any(k.startswith(_LEARNER) for k in state):
        state = _network_of_learner(state, own)
    for prefix in ("module.", *prefixes):
        if any(k.startswith(prefix) for k in state) and not any(k in own for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if k in own or not k.startswith(tuple(ignore))}


def load_weights(
    module: nn.Module,
    path: str | Path,
    prefixes: Sequence[str] = (),
    ignore: Sequence[str] = (),
    what: str = "the network",
) -> None:
    """Load ``path`` into ``module`` (see the module doc), or raise :class:`BackboneError`
    naming the missing and unexpected keys and the shapes that differ."""
    raw = read_state(path)
    state = fit_state(raw, module, prefixes, ignore)
    own = module.state_dict()
    # a run's encoder may start a network with a ways-wide head: that head keeps its init
    new_head = any(k.startswith(_LEARNER) for k in raw)
    missing = [k for k in own if k not in state and not (new_head and k.startswith("head."))]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {list(v.shape)}, {what} {list(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = [
        _listed(len(missing), "missing key", missing),
        _listed(len(unexpected), "unexpected key", unexpected),
        _listed(len(shapes), "shape mismatch", shapes, plural="shape mismatches"),
    ]
    found = [p for p in problems if p]
    if found:
        raise BackboneError(
            f"model.weights={path} does not fit {what}: {'; '.join(found)} (a file saved from "
            "the same model.name and settings fits)"
        )
    module.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in state.items()}})


_LEARNER = "fastmeta-learner."


def _run_state(path: str | Path, file: Path, payload: object = None) -> dict[str, Tensor]:
    """The learner weights of a run directory's checkpoint, or of one checkpoint file (already
    loaded as ``payload``), marked with :data:`_LEARNER` so that :func:`fit_state` picks the
    network out of them."""
    from fastmeta.run.checkpoint import CheckpointCorruptError, read_checkpoint, verified_payload
    from fastmeta.run.directory import RunDirectory

    checkpoint = RunDirectory(file).weights_file() if file.is_dir() else file
    if checkpoint is None:
        raise BackboneError(
            f"model.weights={path} is a folder with no fastmeta checkpoint: give a run "
            "directory that has trained, or a weights file"
        )
    try:
        if payload is None:
            state, _ = read_checkpoint(checkpoint)
        else:
            state, _ = verified_payload(checkpoint, payload)
    except CheckpointCorruptError as error:
        raise BackboneError(f"model.weights={path}: {error}") from None
    learner = state["algorithm"]
    return {_LEARNER + k: v for k, v in learner.items() if isinstance(v, Tensor)}


def _network_of_learner(
    state: Mapping[str, Tensor], own: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The keys of a learner's weights under the prefix (``encoder.``, ``model.backbone.``, ...)
    that names most of ``own``, with prefix removed; a ``head.`` that ``own`` lacks is left out."""
    learner = {k[len(_LEARNER) :]: v for k, v in state.items() if k.startswith(_LEARNER)}
    prefixes = {
        ".".join(k.split(".")[:n]) + "." for k in learner for n in range(1, 4) if k.count(".") > n
    }
    best: dict[str, Tensor] = learner
    hits = sum(k in own for k in learner)
    for prefix in sorted(prefixes):
        under = {k[len(prefix) :]: v for k, v in learner.items() if k.startswith(prefix)}
        found = sum(k in own for k in under)
        if found > hits:
            best, hits = under, found
    if not any(k.startswith("head.") for k in own):
        best = {k: v for k, v in best.items() if not k.startswith("head.")}
    return best


def _listed(count: int, noun: str, items: Sequence[str], plural: str | None = None) -> str:
    if not count:
        return ""
    shown = ", ".join(items[:_SHOWN]) + (f", ... ({count - _SHOWN} more)" if count > _SHOWN else "")
    return f"{count} {noun if count == 1 else plural or noun + 's'} ({shown})"
