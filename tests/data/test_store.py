"""ImageStore: class sizes and indices, float gathering, and rotated classes."""

from __future__ import annotations

import pytest
import torch

from fastmeta.data import ImageStore
from tests.data.stores import random_store


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Gathered float images back to their exact uint8 values."""
    return (images * 255.0).round().to(torch.uint8)


def test_class_image_indices_walk_each_class_in_label_order():
    store = random_store([3, 5, 2])
    assert store.class_sizes.tolist() == [3, 5, 2]
    for c, size in enumerate([3, 5, 2]):
        indices = store.class_image_indices(torch.tensor(c), torch.arange(size))
        assert store.labels[indices].tolist() == [c] * size
        assert indices.tolist() == sorted(indices.tolist())


def test_gather_gives_float_images_in_unit_range():
    store = random_store([4, 4], side=3, channels=2)
    indices = torch.tensor([[0, 5], [7, 1]])
    images = store.gather(indices)
    assert images.shape == (2, 2, 2, 3, 3) and images.dtype == torch.float32
    torch.testing.assert_close(images, store.images[indices].float() / 255.0)
    all_values = ImageStore(
        torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1), torch.zeros(256), ["x"]
    ).gather(torch.arange(256))
    assert float(all_values.min()) == 0.0 and float(all_values.max()) == 1.0


def test_rotated_classes_are_exact_quarter_turns_of_their_base_images():
    base = random_store([4, 3], side=5)
    store = base.with_rotations()
    assert store.num_classes == 8 and store.has_rotations
    assert store.class_base.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert store.class_turns.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert store.class_names[5] == "char001/rot090"
    for c in range(8):
        positions = torch.arange(int(store.class_sizes[c]))
        indices = store.class_image_indices(torch.tensor(c), positions)
        images = store.gather(indices, torch.full_like(indices, c))
        turns = int(store.class_turns[c])
        expected = torch.rot90(store.images[indices], turns, dims=(2, 3))
        assert torch.equal(to_uint8(images), expected)


def test_rotation_only_turns_some_classes_and_needs_the_classes():
    base = random_store([2, 2], side=4)
    store = ImageStore(
        base.images, base.labels, base.base_names, torch.tensor([0, 1]), torch.tensor([2, 0])
    )
    indices = store.class_image_indices(torch.tensor([0, 1]), torch.tensor([1, 1]))
    images = store.gather(indices, torch.tensor([0, 1]))
    assert torch.equal(to_uint8(images[0]), torch.rot90(store.images[indices[0]], 2, (1, 2)))
    assert torch.equal(to_uint8(images[1]), store.images[indices[1]])
    with pytest.raises(ValueError, match="pass the class of each image"):
        store.gather(indices)


def test_to_moves_index_tensors_with_the_images():
    store = random_store([2, 3]).with_rotations((0, 1)).to("cpu")
    assert store.labels.device == store.images.device == store.class_turns.device
    assert store.num_classes == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": torch.zeros(2, 1, 2, 2)}, "must be uint8"),
        ({"labels": torch.zeros(3)}, "one label per image"),
        ({"labels": torch.tensor([0, 2])}, "labels must lie in 0..1"),
        ({"class_base": torch.tensor([0, 5])}, "class_base must hold base labels"),
        ({"class_turns": torch.tensor([0, 4])}, "quarter turns in 0..3"),
    ],
)
def test_bad_store_arguments_are_named(kwargs, message):
    arguments = {
        "images": torch.zeros(2, 1, 2, 2, dtype=torch.uint8),
        "labels": torch.tensor([0, 1]),
        "base_names": ["a", "b"],
    }
    if "class_base" in kwargs or "class_turns" in kwargs:
        arguments.update(class_base=torch.tensor([0, 1]), class_turns=torch.tensor([0, 1]))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ImageStore(**arguments)


def test_rotations_need_square_images():
    store = ImageStore(torch.zeros(2, 1, 2, 3, dtype=torch.uint8), torch.tensor([0, 0]), ["a"])
    with pytest.raises(ValueError, match="square images"):
        store.with_rotations()


def test_concat_keeps_every_class_distinct_with_its_own_images_and_turns():
    first = random_store([3, 2], seed=1).with_rotations((0, 1))
    second = random_store([4], seed=2)
    both = ImageStore.concat([first, second])
    assert both.num_classes == first.num_classes + second.num_classes == 5
    assert both.class_sizes.tolist() == [3, 3, 2, 2, 4]
    for c, (store, k) in enumerate([(first, 0), (first, 1), (first, 2), (first, 3), (second, 0)]):
        positions = torch.arange(int(store.class_sizes[k]))
        mine = both.gather(
            both.class_image_indices(torch.tensor(c), positions), torch.full_like(positions, c)
        )
        theirs = store.gather(
            store.class_image_indices(torch.tensor(k), positions), torch.full_like(positions, k)
        )
        assert torch.equal(mine, theirs)


def test_concat_refuses_different_image_shapes():
    with pytest.raises(ValueError, match="different image shapes"):
        ImageStore.concat([random_store([2], side=4), random_store([2], side=5)])
