"""Standard image augmentation of training episodes, in pure torch, seeded per episode.

The policies (``data.augment``) are those of the few-shot papers that augment:

- ``"none"``: no augmentation (the MAML family, ProtoNets, Matching and Relation Networks).
- ``"flip"``: horizontal flip with probability 1/2.
- ``"pad-crop"``: MetaOptNet's recipe (Lee et al. 2019): a random crop of the image padded
  with zeros (8 pixels at 84x84, 4 at 32x32), colour jitter (brightness, contrast and
  saturation, each a factor in [0.6, 1.4]) and a horizontal flip.
- ``"resized-crop"``: Chen et al. 2019's recipe (Baseline, Baseline++): a random resized crop
  (area 8-100 %, aspect ratio 3/4-4/3, resized back bilinearly), the same colour jitter and a
  horizontal flip.

Every random number of an image is a pure function of (the stream's seed, the episode index,
the image's place in the episode) through :mod:`fastmeta.data.counter_rng`, so episode ``i``
is augmented identically whatever batch it is drawn in, on any device, and a resumed run sees
exactly the images it would have seen. Only training episodes are augmented
(:class:`AugmentedTaskSet`); validation and test episodes never are.

Differences from torchvision, kept for speed and determinism: the jitter is applied in a fixed
order (brightness, contrast, saturation; torchvision shuffles it), and resizing is bilinear
without antialiasing. Crops are cut one image at a time (slices are cheap; a batched gather is
not, on a CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from fastmeta.data.counter_rng import below, draw_bits, episode_keys, mix32, unit_interval
from fastmeta.data.sampler import EpisodeSampler
from fastmeta.data.store import ImageStore
from fastmeta.data.taskset import TaskSet, gather_batch
from fastmeta.run_config import AugmentPolicy as Policy
from fastmeta.tasks import TaskBatch

POLICIES: tuple[str, ...] = get_args(Policy)

JITTER = 0.4
"""Brightness, contrast and saturation factors are drawn uniformly in ``1 +- JITTER``."""
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
_ATTEMPTS = 10  # random resized crop tries this many boxes before taking the whole image
_STREAM_SALT = 0x5A0C7A61  # separates the augmentation's draws from the sampler's
# Draw layout per image: flip, three jitter factors, two crop offsets, then the resized crop's
# attempts (area, ratio, row, column each).
_FLIP, _JITTER, _OFFSETS, _ATTEMPT = 0, 1, 4, 6
DRAWS_PER_IMAGE = _ATTEMPT + 4 * _ATTEMPTS


def padding_for(side: int) -> int:
    """Zero padding of ``"pad-crop"``: MetaOptNet's 8 pixels at 84x84, 4 at 32x32."""
    return 8 if side >= 64 else 4


def image_keys(seed: int, start: int, episodes: int, images: int, device: torch.device) -> Tensor:
    """``[episodes, images]`` 32-bit keys of image ``j`` of episode ``start + e`` of ``seed``."""
    keys = mix32(episode_keys(seed, start, episodes, device) ^ _STREAM_SALT)
    return draw_bits(keys, 0, images)


def augment_images(images: Tensor, keys: Tensor, policy: Policy) -> Tensor:
    """``images [N, C, H, W]`` (uint8, or float in [0, 1]) augmented by ``policy``, image ``n``
    with the draws of ``keys[n]`` (32-bit integers, e.g. from :func:`image_keys`); the result
    has the input's dtype and shape."""
    if policy not in POLICIES:
        raise ValueError(f"unknown augmentation {policy!r}: choose one of {', '.join(POLICIES)}")
    if policy == "none" or images.shape[0] == 0:
        return images
    if images.dim() != 4 or keys.shape != images.shape[:1]:
        raise ValueError(
            f"augment_images takes images [N, C, H, W] and keys [N]; got {tuple(images.shape)} "
            f"and {tuple(keys.shape)}"
        )
    integer = images.dtype == torch.uint8
    x = images.float().div_(255.0) if integer else images
    bits = draw_bits(keys, 0, DRAWS_PER_IMAGE)
    if policy == "pad-crop":
        x = _pad_crop(x, bits[:, _OFFSETS : _OFFSETS + 2], padding_for(x.shape[-1]))
    elif policy == "resized-crop":
        x = _resized_crop(x, bits[:, _ATTEMPT:])
    if policy != "flip":
        x = _jitter(x, bits[:, _JITTER : _JITTER + 3])
    flip = below(bits[:, _FLIP], 2).bool().view(-1, 1, 1, 1)
    x = torch.where(flip, x.flip(-1), x)
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8) if integer else x


def _pad_crop(x: Tensor, bits: Tensor, padding: int) -> Tensor:
    """A crop of the zero-padded image at offsets in ``0 .. 2 * padding`` (both inclusive)."""
    _, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = below(bits, 2 * padding + 1).tolist()
    # One slice per image: far cheaper on a CPU than one gather with four index tensors.
    return torch.stack(
        [image[:, r : r + h, c : c + w] for image, (r, c) in zip(padded, offsets, strict=True)]
    )


def _resized_crop(x: Tensor, bits: Tensor) -> Tensor:
    """torchvision's RandomResizedCrop box (the first of ``_ATTEMPTS`` draws that fits, else
    the whole image), cut out and resized back to the image's size bilinearly."""
    n, _, h, w = x.shape
    draws = bits.view(n, _ATTEMPTS, 4)
    area = h * w * (SCALE[0] + (SCALE[1] - SCALE[0]) * unit_interval(draws[..., 0]))
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * unit_interval(draws[..., 1]))
    box_w = torch.sqrt(area * ratio).round().long()
    box_h = torch.sqrt(area / ratio).round().long()
    fits = (box_w > 0) & (box_w <= w) & (box_h > 0) & (box_h <= h)
    first = torch.where(fits.any(1), fits.long().argmax(1), -1)
    chosen = first.clamp(min=0).view(n, 1)
    box_w = torch.where(first >= 0, box_w.gather(1, chosen).squeeze(1), w)
    box_h = torch.where(first >= 0, box_h.gather(1, chosen).squeeze(1), h)
    top = below(draws[..., 2].gather(1, chosen).squeeze(1), h - box_h + 1)
    left = below(draws[..., 3].gather(1, chosen).squeeze(1), w - box_w + 1)
    boxes = torch.stack([top, left, box_h, box_w], 1).tolist()
    crops = [
        F.interpolate(image[None, :, y : y + bh, z : z + bw], size=(h, w), mode="bilinear")
        for image, (y, z, bh, bw) in zip(x, boxes, strict=True)
    ]
    return torch.cat(crops)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, torchvision's rgb_to_grayscale


def _grey(x: Tensor) -> Tensor:
    """The luma of RGB images (the mean of other channel counts) as ``[N, 1, H, W]``."""
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    return (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _jitter(x: Tensor, bits: Tensor) -> Tensor:
    """Brightness, contrast and saturation, each blended by a factor in ``1 +- JITTER``."""
    factors = (1 - JITTER + 2 * JITTER * unit_interval(bits)).to(x.dtype).view(-1, 3, 1, 1, 1)
    x = (x * factors[:, 0]).clamp_(0, 1)
    mean = _grey(x).mean((1, 2, 3), keepdim=True)
    x = torch.lerp(mean.expand_as(x), x, factors[:, 1]).clamp_(0, 1)
    if x.shape[1] == 3:
        x = torch.lerp(_grey(x).expand_as(x), x, factors[:, 2]).clamp_(0, 1)
    return x


def augment_batch(batch: TaskBatch, policy: Policy, seed: int, start: int) -> TaskBatch:
    """``batch`` (episodes ``start ..`` of stream ``seed``) with every support and query image
    augmented; image ``j`` of an episode (support first, then query) gets its own draws."""
    if policy == "none":
        return batch
    tasks, support, query = (
        batch.support_x.shape[0],
        batch.support_x.shape[1],
        batch.query_x.shape[1],
    )
    keys = image_keys(seed, start, tasks, support + query, batch.support_x.device)
    shape = batch.support_x.shape[2:]
    images = torch.cat([batch.support_x, batch.query_x], 1).reshape(-1, *shape)
    out = augment_images(images, keys.reshape(-1), policy).view(tasks, support + query, *shape)
    return replace(batch, support_x=out[:, :support], query_x=out[:, support:])


class AugmentedTaskSet(TaskSet):
    """A :class:`TaskSet` whose episodes are augmented by ``policy`` (before ``transform``),
    episode ``i`` always the same way: use it for the training stream only."""

    def __init__(
        self,
        store: ImageStore,
        sampler: EpisodeSampler,
        policy: Policy,
        batch_size: int = 32,
        transform: Callable[[TaskBatch], TaskBatch] | None = None,
    ) -> None:
        super().__init__(store, sampler, batch_size, transform)
        if policy not in POLICIES:
            raise ValueError(
                f"unknown augmentation {policy!r}: choose one of {', '.join(POLICIES)}"
            )
        self.policy: Policy = policy

    def episodes(self, start: int, count: int) -> TaskBatch:
        """Episodes ``start .. start+count-1`` as one batch, augmented."""
        tasks = gather_batch(self.store, self.sampler.sample(start, count))
        tasks = augment_batch(tasks, self.policy, self.sampler.seed, start)
        return tasks if self.transform is None else self.transform(tasks)
