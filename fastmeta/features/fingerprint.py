"""Fingerprints for the feature cache: a network's weights, a file, a store's contents."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from fastmeta.data.store import ImageStore

_CHUNK = 1 << 20


def _update(digest: hashlib.blake2b, tensor: Tensor) -> None:
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def state_fingerprint(network: nn.Module) -> str:
    """A digest of every tensor of ``network``'s state dict (its name, dtype, shape, values):
    it changes with the weights, however they were made (a file, a checkpoint, a seed)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        _update(digest, tensor)
    return digest.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    """A digest of the bytes of the file ``path``."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def store_fingerprint(store: ImageStore) -> str:
    """A digest of ``store``'s images, labels, class names and class rotations."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (store.images, store.labels, store.class_base, store.class_turns):
        _update(digest, tensor)
    digest.update("\0".join(store.base_names).encode())
    return digest.hexdigest()
