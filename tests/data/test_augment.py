"""Augmentation: each policy does what it says, on uint8 and float, seeded per episode."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest
import torch

from fastmeta.data import EpisodeSampler, TaskSet
from fastmeta.data.augment import (
    POLICIES,
    AugmentedTaskSet,
    augment_batch,
    augment_images,
    image_keys,
    padding_for,
)
from fastmeta.run_config import DataConfig
from tests.data.stores import random_store


def keys(n: int, seed: int = 0) -> torch.Tensor:
    return image_keys(seed, 0, 1, n, torch.device("cpu")).view(-1)


def smooth_images(n: int, side: int = 16) -> torch.Tensor:
    """Float RGB images in [0.2, 0.8] with distinct left and right halves (flips show)."""
    ramp = torch.linspace(0.2, 0.8, side)
    base = torch.stack(
        [ramp.expand(side, side), ramp.expand(side, side).T, 1 - ramp.expand(side, side)]
    )
    return base.unsqueeze(0) + 0.1 * torch.rand(
        n, 1, 1, 1, generator=torch.Generator().manual_seed(n)
    )


def test_none_returns_the_images_unchanged():
    images = smooth_images(3)
    assert augment_images(images, keys(3), "none") is images


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "none"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_keeps_dtype_shape_and_range(policy, dtype):
    images = smooth_images(8)
    if dtype == torch.uint8:
        images = (images * 255).round().to(torch.uint8)
    out = augment_images(images, keys(8), policy)
    assert out.dtype == dtype and out.shape == images.shape
    if dtype == torch.float32:
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, images)


def test_flip_mirrors_about_half_the_images_exactly():
    images = smooth_images(200)
    out = augment_images(images, keys(200), "flip")
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, images, strict=True)])
    assert bool((flipped | kept).all())
    assert 70 < int(flipped.sum()) < 130


def test_pad_crop_shifts_each_image_within_the_padding():
    side = 32
    pad = padding_for(side)
    images = torch.rand(50, 1, side, side) * 0.5 + 0.25  # grey: saturation is a no-op
    out = augment_images(images, keys(50), "pad-crop")
    # Undo nothing; check that each output is a shifted (maybe flipped) copy up to a brightness/
    # contrast change: its non-zero region is a shifted window of at least (side - pad)^2.
    inside = (out > 0).all(1)
    rows, cols = inside.any(2).sum(1), inside.any(1).sum(1)
    assert bool((rows >= side - pad).all()) and bool((cols >= side - pad).all())
    assert bool((rows < side).any()), "some crop reaches into the zero padding"
    assert padding_for(84) == 8 and padding_for(32) == 4


def test_resized_crop_of_a_constant_image_stays_constant_up_to_jitter():
    images = torch.full((20, 3, 16, 16), 0.5)
    out = augment_images(images, keys(20), "resized-crop")
    # Crop and flip move nothing on a constant image; jitter keeps each image constant.
    spread = out.flatten(1).max(1).values - out.flatten(1).min(1).values
    assert float(spread.max()) < 1e-5
    assert out.flatten(1)[:, 0].unique().numel() > 1, "brightness differs between images"


def test_resized_crop_zooms_in():
    side = 32
    images = torch.zeros(40, 3, side, side)
    images[:, :, ::2] = 1.0  # stripes one pixel wide: a zoomed crop widens them
    out = augment_images(images, keys(40), "resized-crop")
    # After zooming, a row-to-row change is rarer than in the original (every row).
    changes = (out[:, 0, 1:] - out[:, 0, :-1]).abs().mean((1, 2))
    assert float(changes.min()) < 0.5


def test_draws_depend_on_episode_and_image_not_on_batch():
    store = random_store([20] * 6, side=8, channels=3)
    sampler = EpisodeSampler(store.class_sizes, 3, 1, 2, seed=5)
    augmented = AugmentedTaskSet(store, sampler, "pad-crop", batch_size=4)
    together = augmented.episodes(0, 4)
    alone = augmented.episodes(2, 1)
    assert torch.equal(together.support_x[2], alone.support_x[0])
    assert torch.equal(together.query_x[2], alone.query_x[0])
    plain = TaskSet(store, sampler, batch_size=4).episodes(0, 4)
    assert torch.equal(plain.support_y, together.support_y)
    assert not torch.equal(plain.support_x, together.support_x)
    other_seed = AugmentedTaskSet(
        store, EpisodeSampler(store.class_sizes, 3, 1, 2, seed=5), "pad-crop", 4
    )
    assert torch.equal(other_seed.episodes(0, 4).query_x, together.query_x), "same stream"


def test_augment_batch_of_none_is_the_batch():
    store = random_store([10] * 4, side=8, channels=3)
    batch = TaskSet.from_store(store, 2, 1, 1, batch_size=2).batch(0)
    assert augment_batch(batch, "none", 0, 0) is batch


def test_policies_are_the_settings_choices():
    hints = get_type_hints(DataConfig)
    assert get_args(hints["augment"]) == POLICIES
    assert DataConfig().augment == "none", "off unless a preset turns it on"


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="choose one of"):
        augment_images(smooth_images(2), keys(2), "cutout")  # type: ignore[arg-type]


def test_transform_runs_after_augmentation():
    store = random_store([10] * 4, side=8, channels=3)
    sampler = EpisodeSampler(store.class_sizes, 2, 1, 1, seed=1)
    seen = []

    def record(batch):
        seen.append(batch.support_x.clone())
        return batch

    AugmentedTaskSet(store, sampler, "flip", 2, transform=record).batch(0)
    expected = AugmentedTaskSet(store, sampler, "flip", 2).batch(0)
    assert torch.equal(seen[0], expected.support_x)


@pytest.mark.parametrize("policy", ["none", "pad-crop"])
def test_data_augment_setting_augments_the_training_episodes_only(tmp_path, policy):
    from fastmeta.datasets.patterns import write_pattern_folder
    from fastmeta.presets import load_config
    from fastmeta.run.build import build_sources
    from fastmeta.run.settings import apply_run_overrides, resolve_config

    root = write_pattern_folder(tmp_path / "patterns", classes=8, images=4, size=16)
    overrides = [f"data.root={root}", "data.image_size=16", "data.fractions=[0.5,0.25,0.25]",
                 "sampler.ways=2", "sampler.shots=1", "sampler.queries=1",
                 f"data.augment={policy}"]  # fmt: skip
    config = resolve_config(apply_run_overrides(load_config("protonet-folder"), overrides))
    sources = build_sources(config, torch.device("cpu"))
    assert isinstance(sources.train, AugmentedTaskSet) == (policy != "none")
    assert not isinstance(sources.val, AugmentedTaskSet)
    assert not isinstance(sources.test, AugmentedTaskSet)
    if policy != "none":
        assert sources.train.policy == policy
        again = build_sources(config, torch.device("cpu")).train.batch(3)
        torch.testing.assert_close(sources.train.batch(3).support_x, again.support_x)


def test_generated_tasks_refuse_augmentation():
    from fastmeta.presets import load_config
    from fastmeta.run.settings import apply_run_overrides, resolve_config

    with pytest.raises(ValueError, match=r"data\.augment applies to image datasets"):
        resolve_config(apply_run_overrides(load_config("sine-maml"), ["data.augment=flip"]))
