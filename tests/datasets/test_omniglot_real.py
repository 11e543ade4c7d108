"""The real Omniglot (``$FASTMETA_DATA/omniglot``): counts, splits, pixels, and the cache.

The session fixture ``real`` (conftest.py) decodes the zips once into a fresh cache and loads
them again from it; every test here reuses those results.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fastmeta.datasets import omniglot
from fastmeta.datasets.omniglot import load_omniglot, read_omniglot

SPLITS = ("train", "val", "test")


def test_counts_shape_and_dtype(real: SimpleNamespace) -> None:
    data = real.data
    assert len(data.names) == 1623
    assert data.images.shape == (32460, 1, 28, 28)
    assert data.images.dtype == np.uint8
    assert np.bincount(data.labels, minlength=1623).tolist() == [20] * 1623
    assert len({name.split("/")[0] for name in data.names}) == 50


def test_pixels_are_lanczos_resized_and_inverted(real: SimpleNamespace) -> None:
    # Independent decode of one known drawing, straight from the zip.
    member = "images_background/Latin/character01/0683_01.png"
    with zipfile.ZipFile(real.root / "images_background.zip") as archive:
        source = Image.open(io.BytesIO(archive.read(member)))
        expected = 255 - np.asarray(source.convert("L").resize((28, 28), Image.LANCZOS))
    label = real.data.names.index("Latin/character01")
    candidates = real.data.images[real.data.labels == label, 0]
    assert any(np.array_equal(image, expected) for image in candidates)
    # Strokes bright on a dark background: borders are black, most pixels dark, strokes white.
    images = real.data.images
    assert images[:, :, 0, :].mean() < 8 and images.mean() < 40
    assert (images.reshape(len(images), -1).max(axis=1) == 255).mean() > 0.99


def test_vinyals_split_is_exactly_the_published_lists(real: SimpleNamespace) -> None:
    counts = {s: real.vinyals[s].num_classes for s in SPLITS}
    assert counts == {"train": 4112, "val": 688, "test": 1692}
    for split, store in real.vinyals.items():
        listed = (real.root / f"splits/vinyals/{split}.txt").read_text().split()
        assert store.class_names == listed
        assert store.class_sizes.tolist() == [20] * len(listed)
        assert len(store.images) == 20 * len(store.base_names)
        assert store.image_shape == (1, 28, 28)
    assert [len(real.vinyals[s].base_names) for s in SPLITS] == [1028, 172, 423]


@pytest.mark.parametrize("scheme", ["vinyals", "maml"])
def test_splits_share_no_class_and_no_character(real: SimpleNamespace, scheme: str) -> None:
    stores = getattr(real, scheme)
    characters = {s: set(stores[s].base_names) for s in SPLITS}
    classes = {s: set(stores[s].class_names) for s in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not characters[a] & characters[b], (a, b)
        assert not classes[a] & classes[b], (a, b)
    assert set().union(*characters.values()) == set(real.data.names)


def test_maml_split_sizes_rotations_and_reproducibility(real: SimpleNamespace) -> None:
    stores = real.maml
    assert [len(stores[s].base_names) for s in SPLITS] == [1100, 100, 423]
    assert [stores[s].num_classes for s in SPLITS] == [4400, 400, 1692]
    for store in stores.values():
        turns = {}
        for base, turn in zip(store.class_base.tolist(), store.class_turns.tolist(), strict=True):
            turns.setdefault(base, set()).add(turn)
        assert all(t == {0, 1, 2, 3} for t in turns.values())
    # The split depends only on the names and the seed: pinned so a change cannot go unnoticed.
    digest = hashlib.sha256("\n".join(sorted(stores["test"].base_names)).encode()).hexdigest()
    assert digest[:16] == PINNED_MAML_TEST
    other = load_omniglot("test", real.root, cache_dir=real.cache, scheme="maml", seed=2)
    assert set(other.base_names) != set(stores["test"].base_names)


PINNED_MAML_TEST = "52ea5dc3a194ac92"


def test_second_load_comes_from_the_cache(
    real: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_files = list(real.cache.glob("omniglot-*"))
    assert len(key_files) == 1 and not list(real.cache.glob("*.tmp"))
    assert np.array_equal(real.again.images, real.data.images)
    assert real.again.names == real.data.names
    assert real.warm < real.cold / 5, (real.cold, real.warm)
    # Prove it: with decoding disabled, loading still works.
    monkeypatch.setattr(omniglot, "decode_images", _no_decoding)
    store = load_omniglot("val", real.root, cache_dir=real.cache)
    assert store.num_classes == 688
    # Another image size is another cache entry (and would need decoding).
    with pytest.raises(AssertionError, match="decoding"):
        read_omniglot(real.root, image_size=32, cache_dir=real.cache)


def _no_decoding(*args: object, **kwargs: object) -> None:
    raise AssertionError("decoding was attempted")
