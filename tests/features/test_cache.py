"""The feature cache: a hit loads without embedding; a change of the network, its weights, the
preprocessing or the images misses; a damaged file is rebuilt with a warning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastmeta.data.store import ImageStore
from fastmeta.features import cache as feature_cache
from fastmeta.features.cache import cached_features, feature_key


class Counting(nn.Module):
    """A linear encoder that counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = nn.Linear(16, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1))


def store(seed: int = 0) -> ImageStore:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (12, 1, 4, 4), dtype=torch.uint8, generator=g)
    return ImageStore(images, torch.arange(3).repeat_interleave(4), ["a", "b", "c"])


def run(tmp_path, network=None, data=None, **kwargs):
    return cached_features(
        network or Counting(), data or store(), cache_dir=tmp_path, progress=False, **kwargs
    )


def test_a_hit_loads_without_embedding(tmp_path):
    first = run(tmp_path)
    again = Counting()
    second = run(tmp_path, again)
    assert again.calls == 0
    assert torch.equal(first.features, second.features)
    assert len(list((tmp_path / "features").glob("*.pt"))) == 1


class Other(Counting):
    pass


@pytest.mark.parametrize(
    "change",
    ["weights", "network", "preprocessing", "images", "labels"],
)
def test_any_change_misses(tmp_path, change):
    run(tmp_path)
    network, data, kwargs = Counting(), store(), {}
    if change == "weights":
        with torch.no_grad():
            network.linear.bias[0] += 1e-6
    elif change == "network":
        network = Other()
    elif change == "preprocessing":
        kwargs = {"preprocessing": "resize 8"}
    elif change == "images":
        data.images[0, 0, 0, 0] ^= 1
    else:
        data = ImageStore(data.images, data.labels.flip(0), ["a", "b", "c"])
    assert feature_key(network, data, kwargs.get("preprocessing")) != feature_key(
        Counting(), store()
    )
    run(tmp_path, network, data, **kwargs)
    assert network.calls > 0
    assert len(list((tmp_path / "features").glob("*.pt"))) == 2


@pytest.mark.parametrize("damage", ["truncated", "other key", "wrong rows"])
def test_a_damaged_file_is_rebuilt_with_a_warning(tmp_path, damage):
    good = run(tmp_path)
    (path,) = (tmp_path / "features").glob("*.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "other key":
        torch.save({"key": "x", "features": good.features}, path)
    else:
        torch.save({"key": path.stem, "features": good.features[:3]}, path)
    network = Counting()
    with pytest.warns(UserWarning, match="ignoring damaged feature cache"):
        rebuilt = run(tmp_path, network)
    assert network.calls > 0
    assert torch.equal(rebuilt.features, good.features)
    assert torch.equal(run(tmp_path, Counting()).features, good.features)  # written again


def test_an_unwritable_cache_only_warns(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("read-only file system")

    monkeypatch.setattr(feature_cache.torch, "save", fail)
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        features = run(tmp_path)
    assert features.features.shape == (12, 3)
