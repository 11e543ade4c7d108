"""Embed every image of a store once: batched, without gradients, in eval mode, with progress."""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn
from tqdm import tqdm

from fastmeta.data.store import ImageStore


def used_turns(store: ImageStore) -> list[int]:
    """The quarter turns (0-3) that some class of ``store`` is seen at, in increasing order."""
    return sorted(set(store.class_turns.tolist()))


def check_batch_independent(network: nn.Module) -> None:
    """Refuse a network whose BatchNorm uses batch statistics (fastmeta's conv4 and resnet12
    do, as in the papers): an image's features would depend on the images embedded with it,
    so features of single images are not defined."""
    for name, module in network.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
            raise ValueError(
                f"{type(network).__name__}'s BatchNorm {name or '(top)'} uses batch statistics, so "
                "an image's features depend on the images embedded with it: frozen features need "
                "a network with running statistics (a timm: or hf: backbone); score such a network "
                "on image episodes instead (each episode embedded in one call)"
            )


def embed_store(
    network: nn.Module,
    store: ImageStore,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Tensor:
    """Features ``[T * N, D]`` (float32, on the CPU) of the ``N`` images of ``store`` at each of
    its ``T`` used rotations (:func:`used_turns`; one block of ``N`` rows per turn, like
    :meth:`ImageStore.gather`'s layout), from ``network`` in eval mode without gradients; the
    network's mode is restored afterwards. A network with batch-statistics BatchNorm is refused
    (:func:`check_batch_independent`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_batch_independent(network)
    turns = used_turns(store)
    count = store.images.shape[0]
    training = network.training
    network.eval()
    blocks: list[Tensor] = []
    bar = tqdm(
        total=count * len(turns), desc="embedding images", unit="img", file=sys.stderr,
        disable=None if progress else True,
    )  # fmt: skip
    try:
        with torch.no_grad():
            for turn in turns:
                for start in range(0, count, batch_size):
                    images = store.images[start : start + batch_size].to(device)
                    x = images.float().mul_(1.0 / 255.0)
                    if turn:
                        x = torch.rot90(x, turn, dims=(2, 3))
                    out = network(x)
                    if out.dim() != 2:
                        raise ValueError(
                            f"{type(network).__name__} gives {tuple(out.shape[1:])} per image; "
                            "frozen features need an embedding network ([N, D])"
                        )
                    blocks.append(out.float().cpu())
                    bar.update(images.shape[0])
    finally:
        bar.close()
        network.train(training)
    return torch.cat(blocks)
