"""Features cached on disk, keyed by everything that makes them.

The key is a digest of the network (its class and name), its weights (a digest of its state
dict, so a weights file, a trained checkpoint and a random seed all count), its preprocessing
(the backbone's input size and statistics, or what the caller passes) and the images (a digest
of the store's contents). A file is ``<cache root>/features/<key>.pt`` (see
:func:`fastmeta.datasets.paths.cache_root`): found, it is loaded; any change of the four
misses; a file that cannot be read, or holds another key or shape, is rebuilt with a warning.
Files are written to a temporary name and renamed, so a killed run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from fastmeta.data.store import ImageStore
from fastmeta.datasets.paths import PathLike, cache_root
from fastmeta.features.episodes import FeatureStore
from fastmeta.features.extract import embed_store, used_turns
from fastmeta.features.fingerprint import state_fingerprint, store_fingerprint

_VERSION = 1


def network_description(network: nn.Module) -> str:
    """The network's class and, for a timm/hf backbone, its ``model.name``."""
    name = getattr(network, "name", "")
    return f"{type(network).__module__}.{type(network).__qualname__}:{name}"


def preprocessing_description(network: nn.Module) -> str:
    """A timm/hf backbone's input size and statistics (empty for a built-in network, which
    takes the images as they are)."""
    spec = getattr(network, "spec", None)
    return spec.fingerprint() if spec is not None else ""


def feature_key(network: nn.Module, store: ImageStore, preprocessing: str | None = None) -> str:
    """The cache key of ``network``'s features of ``store``; ``preprocessing`` describes any
    transform the caller applies (default: the backbone's own,
    :func:`preprocessing_description`)."""
    parts = {
        "version": _VERSION,
        "network": network_description(network),
        "weights": state_fingerprint(network),
        "preprocessing": preprocessing_description(network)
        if preprocessing is None
        else preprocessing,
        "data": store_fingerprint(store),
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


def cached_features(
    network: nn.Module,
    store: ImageStore,
    *,
    cache_dir: PathLike | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    preprocessing: str | None = None,
    progress: bool = True,
) -> FeatureStore:
    """``store``'s features under ``network`` (frozen, eval mode): loaded from the cache when
    its key is there, else computed (:func:`embed_store`) and written."""
    key = feature_key(network, store, preprocessing)
    path = cache_root(cache_dir) / "features" / f"{key}.pt"
    rows = store.images.shape[0] * len(used_turns(store))
    features = _read(path, key, rows)
    if features is None:
        features = embed_store(network, store, batch_size, device, progress)
        _write(path, key, features)
    return FeatureStore(features, store)


def _read(path: Path, key: str, rows: int) -> Tensor | None:
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        features = saved["features"]
        if saved.get("key") != key or not isinstance(features, Tensor):
            raise ValueError("it holds another key")
        if features.dim() != 2 or features.shape[0] != rows:
            raise ValueError(f"it holds {tuple(features.shape)} for {rows} images")
    except Exception as error:  # any damage: recompute
        warnings.warn(
            f"ignoring damaged feature cache {path} ({type(error).__name__}: {error}); "
            "embedding the images again",
            stacklevel=3,
        )
        return None
    return features


def _write(path: Path, key: str, features: Tensor) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"key": key, "features": features}, temporary)
        os.replace(temporary, path)
    except OSError as error:  # an unwritable cache only costs time next run
        warnings.warn(
            f"could not write the feature cache {path} ({error}); set FASTMETA_CACHE to a "
            "writable folder to keep features between runs",
            stacklevel=3,
        )
