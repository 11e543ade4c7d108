"""learn2learn's data API as documented: meta-datasets, Taskset semantics (global random state,
endless sets of length 1, cached pools), the task transforms, user-written transforms in
learn2learn's form mixed with them, and the data helpers."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import fastmeta.compat.learn2learn as l2l
from fastmeta.compat.learn2learn.data.transforms import (
    ConsecutiveLabels,
    FilterLabels,
    FusedNWaysKShots,
    KShots,
    LoadData,
    NWays,
    RemapLabels,
    TaskTransform,
)

CLASSES, PER_CLASS = 8, 5


def tensors() -> TensorDataset:
    """Item ``i`` is ``x = [i]`` with label ``i // PER_CLASS``."""
    size = CLASSES * PER_CLASS
    return TensorDataset(torch.arange(size).float().unsqueeze(1), torch.arange(size) // PER_CLASS)


@pytest.fixture
def meta() -> l2l.data.MetaDataset:
    return l2l.data.MetaDataset(tensors())


def items(x: torch.Tensor) -> list[int]:
    return x[:, 0].long().tolist()


def test_meta_dataset_indexes_labels_from_items_or_dictionaries():
    data = tensors()
    meta = l2l.data.MetaDataset(data)
    assert meta.labels == list(range(CLASSES)) and len(meta) == len(data)
    assert meta.labels_to_indices[2] == [10, 11, 12, 13, 14] and meta.indices_to_labels[7] == 1
    words = {i: f"class{i % 3}" for i in range(len(data))}
    named = l2l.data.MetaDataset(data, indices_to_labels=words)
    assert named.labels == ["class0", "class1", "class2"]
    by_label = l2l.data.MetaDataset(data, labels_to_indices=named.labels_to_indices)
    assert by_label.indices_to_labels == words
    by_label.create_bookkeeping()  # rebuilt from the items' own labels
    assert by_label.labels == meta.labels and by_label.indices_to_labels[7] == 1
    with pytest.raises(ValueError, match="cover 3 of 40 items"):
        l2l.data.MetaDataset(data, indices_to_labels={0: 0, 1: 0, 2: 1})
    with pytest.raises(TypeError, match=r"wraps a torch\.utils\.data\.Dataset; got list"):
        l2l.data.MetaDataset([(torch.zeros(1), 0)])


def test_union_renumbers_labels_apart_and_filtered_keeps_them(meta):
    union = l2l.data.UnionMetaDataset([meta, tensors()])
    assert len(union) == 2 * len(meta) and union.labels == list(range(2 * CLASSES))
    x, y = union[len(meta) + 7]
    assert x.item() == 7 and y == CLASSES + 1
    filtered = l2l.data.FilteredMetaDataset(meta, [5, 2])
    assert len(filtered) == 2 * PER_CLASS and sorted(filtered.labels) == [2, 5]
    assert filtered[0][1].item() == 5 and filtered[PER_CLASS][1].item() == 2
    assert filtered.labels_to_indices[2] == list(range(PER_CLASS, 2 * PER_CLASS))
    with pytest.raises(ValueError, match="label 9 does not occur"):
        l2l.data.FilteredMetaDataset(meta, [9])


def test_endless_tasksets_have_length_one_and_draw_a_new_task_each_time(meta):
    tasks = l2l.data.Taskset(meta, [NWays(meta, 2), KShots(meta, 1), LoadData(meta)])
    assert len(tasks) == 1 and tasks.num_tasks == -1
    drawn = {tuple(items(tasks[0][0])) for _ in range(30)}
    assert len(drawn) > 10  # index 0 again and again: new tasks, as learn2learn's
    assert l2l.data.TaskDataset is l2l.data.Taskset


def test_a_pool_fixes_each_task_and_sample_picks_among_them(meta):
    tasks = l2l.data.Taskset(meta, [NWays(meta, 3), KShots(meta, 2), LoadData(meta)], num_tasks=4)
    assert len(tasks) == 4
    first = [items(tasks[i][0]) for i in range(4)]
    assert [items(tasks[i][0]) for i in range(4)] == first
    assert all(items(tasks.sample()[0]) in first for _ in range(10))
    assert [items(x) for x, _ in tasks] == first
    with pytest.raises(IndexError, match="outside this pool of 4 tasks"):
        tasks[4]
    for bad in (0, -2):
        with pytest.raises(ValueError, match="num_tasks must be -1"):
            l2l.data.Taskset(meta, num_tasks=bad)


def test_the_global_random_state_decides_the_tasks(meta):
    def draw(seed: int) -> list[list[int]]:
        random.seed(seed)
        tasks = l2l.data.Taskset(meta, [FusedNWaysKShots(meta, 2, 2), LoadData(meta)])
        return [items(tasks.sample()[0]) for _ in range(5)]

    assert draw(3) == draw(3) and draw(3) != draw(4)


def test_each_transform_does_what_learn2learn_documents(meta):
    random.seed(0)
    x, y = l2l.data.Taskset(meta, [NWays(meta, 3), LoadData(meta)]).sample()
    assert len(y.unique()) == 3 and sorted(torch.bincount(y)[y.unique()].tolist()) == [5, 5, 5]
    assert [i // PER_CLASS for i in items(x)] == y.tolist()
    x, y = l2l.data.Taskset(meta, [NWays(meta, 3), KShots(meta, 2), LoadData(meta)]).sample()
    assert sorted(torch.bincount(y)[y.unique()].tolist()) == [2, 2, 2] and len(set(items(x))) == 6
    _, y = l2l.data.Taskset(meta, [FilterLabels(meta, [1, 6]), LoadData(meta)]).sample()
    assert sorted(y.tolist()) == [1] * 5 + [6] * 5
    fused = FusedNWaysKShots(meta, n=2, k=3, filter_labels=[0, 4, 7])
    for _ in range(5):
        x, y = l2l.data.Taskset(meta, [fused, LoadData(meta)]).sample()
        assert set(y.tolist()) <= {0, 4, 7} and len(y) == 6 and len(set(items(x))) == 6
    with pytest.raises(ValueError, match="keeps no class"):
        FusedNWaysKShots(meta, n=2, k=1, filter_labels=[])
    with pytest.raises(ValueError, match="k=6 shots requested but class 3 has only 5 items"):
        l2l.data.Taskset(meta, [FilterLabels(meta, [3]), KShots(meta, 6)]).sample()


def test_remap_then_consecutive_gives_labels_in_order(meta):
    random.seed(1)
    steps = [NWays(meta, 4), KShots(meta, 2), LoadData(meta), RemapLabels(meta)]
    x, y = l2l.data.Taskset(meta, [*steps, ConsecutiveLabels(meta)]).sample()
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (
        len({(i // PER_CLASS, label) for i, label in zip(items(x), y.tolist(), strict=True)}) == 4
    )
    clustered = [NWays(meta, 4), KShots(meta, 2), LoadData(meta), ConsecutiveLabels(meta)]
    x, y = l2l.data.Taskset(meta, [*clustered, RemapLabels(meta)]).sample()
    assert [i // PER_CLASS for i in items(x)] == sorted(i // PER_CLASS for i in items(x))
    assert all(y[2 * k] == y[2 * k + 1] for k in range(4)) and sorted(set(y.tolist())) == [
        0,
        1,
        2,
        3,
    ]
    _, y = l2l.data.Taskset(meta, [*steps[:3], RemapLabels(meta, shuffle=False)]).sample()
    assert list(dict.fromkeys(y.tolist())) == [0, 1, 2, 3]
    with pytest.raises(TypeError, match="RemapLabels changes loaded items: put LoadData before"):
        l2l.data.Taskset(meta, [NWays(meta, 2), RemapLabels(meta), LoadData(meta)]).sample()


def keep_even_items(description):
    """A task transform in learn2learn's form: a function of the list of descriptions."""
    return [entry for entry in description if entry.index % 2 == 0]


class TimesTen(TaskTransform):
    """A learn2learn-style transform class appending a per-item function."""

    def __call__(self, description):
        description = self.new_task() if description is None else description
        for entry in description:
            entry.transforms.append(lambda item: (item[0] * 10, *item[1:]))
        return description


def test_user_written_transforms_mix_with_the_built_in_ones(meta):
    random.seed(2)
    steps = [NWays(meta, 3), keep_even_items, KShots(meta, 2), LoadData(meta), TimesTen(meta)]
    x, y = l2l.data.Taskset(meta, [*steps, RemapLabels(meta), ConsecutiveLabels(meta)]).sample()
    originals = [i // 10 for i in items(x)]
    assert all(i % 2 == 0 and i * 10 == v for i, v in zip(originals, items(x), strict=True))
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    load, times_ten = LoadData(meta), TimesTen(meta)
    whole = l2l.data.Taskset(meta, lambda description: times_ten(load(description))).sample()
    assert items(whole[0]) == [10 * i for i in range(len(meta))]  # one callable, from None


def test_an_item_drawn_twice_is_an_independent_copy(meta):
    random.seed(0)
    one_class = [FilterLabels(meta, [2]), KShots(meta, 12, replacement=True)]
    description = l2l.data.Taskset(meta, one_class).sample_task_description()
    assert len(description) == 12 and len({id(d) for d in description}) == 12
    assert len({d.index for d in description}) < 12  # some drawn again
    LoadData(meta)(description[:1])
    assert len(description[0].transforms) == 1 and all(not d.transforms for d in description[1:])


def test_a_dataloader_over_a_taskset_yields_tasks(meta):
    random.seed(0)
    tasks = l2l.data.Taskset(meta, [NWays(meta, 2), KShots(meta, 2), LoadData(meta)])
    loader = DataLoader(tasks, shuffle=True)
    batches = [next(iter(loader)) for _ in range(3)]
    assert all(x.shape == (1, 4, 1) and y.shape == (1, 4) for x, y in batches)
    assert len({tuple(items(x[0])) for x, _ in batches}) > 1


def test_partition_task_infinite_iterator_and_on_device_dataset():
    data = torch.arange(12.0)
    labels = torch.tensor([2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])
    (support, support_y), (query, query_y) = l2l.data.partition_task(data, labels, shots=1)
    assert support.tolist() == [1.0, 2.0, 0.0] and support_y.tolist() == [0, 1, 2]
    assert query_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert query.tolist() == [4.0, 7.0, 10.0, 5.0, 8.0, 11.0, 3.0, 6.0, 9.0]
    with pytest.raises(ValueError, match="same number of items in every class"):
        l2l.data.partition_task(data[:5], labels[:5])
    looped = l2l.data.InfiniteIterator([1, 2])
    assert [next(looped) for _ in range(5)] == [1, 2, 1, 2, 1]

    class Pairs(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.full((2,), float(i)), i

    stacked = l2l.data.OnDeviceDataset(Pairs(), transform=lambda x: x + 1)
    assert stacked.tensors[0].shape == (3, 2) and stacked.tensors[1].tolist() == [0, 1, 2]
    x, y = stacked[2]
    assert x.tolist() == [3.0, 3.0] and y.item() == 2


def test_random_class_rotation_turns_each_class_by_one_of_its_angles(meta):
    images = torch.arange(40 * 9).float().view(40, 1, 3, 3)
    data = l2l.data.MetaDataset(TensorDataset(images, torch.arange(40) // PER_CLASS))
    random.seed(0)
    rotation = l2l.vision.transforms.RandomClassRotation(data, [0.0, 90.0, 180.0, 270.0])
    x, y = l2l.data.Taskset(data, [NWays(data, 4), LoadData(data), rotation]).sample()
    turns = set()
    for image, label in zip(x, y.tolist(), strict=True):
        index = int(image.min()) // 9
        assert index // PER_CLASS == label
        matches = [k for k in range(4) if torch.equal(torch.rot90(images[index], k, (1, 2)), image)]
        turns.add((label, matches[0]))
    assert len(turns) == 4  # one angle per class
    square = torch.arange(25.0).view(1, 5, 5)
    rotate = l2l.vision.transforms.rotate
    assert torch.equal(rotate(square, 90), torch.rot90(square, 1, (1, 2)))
    assert torch.equal(rotate(square, 90.0001), rotate(square, 90))  # the sampling path agrees
    assert torch.equal(rotate(square, -89.9999), rotate(square, 270))
