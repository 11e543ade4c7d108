"""The familiar TaskDataset API: each transform's definition, seeding, and clear errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from fastmeta.data import (
    ConsecutiveLabels,
    FilterLabels,
    FusedNWaysKShots,
    KShots,
    LoadData,
    MetaDataset,
    NWays,
    RemapLabels,
    TaskDataset,
)

CLASS_SIZES = {3: 4, 7: 6, 10: 5, 11: 8, 20: 4, 42: 7}


class PairDataset(Dataset):
    """(x, y) pairs with x = 1000 * index + y, exposing nothing else; counts item reads."""

    def __init__(self) -> None:
        labels = [label for label, size in CLASS_SIZES.items() for _ in range(size)]
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        self.y = [labels[i] for i in order.tolist()]
        self.reads = 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.reads += 1
        return torch.tensor([1000.0 * index + self.y[index]]), self.y[index]


@pytest.fixture
def data() -> PairDataset:
    return PairDataset()


def original_labels(x: torch.Tensor) -> list[int]:
    return (x[:, 0] % 1000).long().tolist()


def indices_of(x: torch.Tensor) -> list[int]:
    return (x[:, 0] // 1000).long().tolist()


def test_meta_dataset_indexes_labels_by_reading_or_from_exposed_labels(data):
    meta = MetaDataset(data)
    assert data.reads == len(data)
    assert meta.labels == sorted(CLASS_SIZES)
    for label, indices in meta.labels_to_indices.items():
        assert indices == [i for i, y in enumerate(data.y) if y == label]
    assert meta.indices_to_labels == dict(enumerate(data.y))
    tensors = TensorDataset(torch.zeros(len(data), 1), torch.tensor(data.y))
    assert MetaDataset(tensors).labels_to_indices == meta.labels_to_indices
    data.targets = data.y  # torchvision style: no item is read
    data.reads = 0
    assert MetaDataset(data).labels_to_indices == meta.labels_to_indices and data.reads == 0
    assert MetaDataset(data, labels=data.y).labels == meta.labels and data.reads == 0
    with pytest.raises(ValueError, match="got 3 labels for a dataset of 34 items"):
        MetaDataset(data, labels=[1, 2, 3])


def test_nways_keeps_every_item_of_n_random_classes(data):
    meta = MetaDataset(data)
    tasks = TaskDataset(meta, [NWays(meta, 3), LoadData(meta)], seed=0)
    seen = set()
    for index in range(20):
        x, y = tasks[index]
        labels = sorted(set(y.tolist()))
        assert len(labels) == 3
        assert sorted(indices_of(x)) == [i for i, v in enumerate(data.y) if v in labels]
        assert original_labels(x) == y.tolist()
        seen.add(tuple(labels))
    assert len(seen) > 5


def test_kshots_keeps_k_distinct_items_per_class(data):
    meta = MetaDataset(data)
    x, y = TaskDataset(meta, [NWays(meta, 4), KShots(meta, 3), LoadData(meta)], seed=1)[0]
    counts = torch.bincount(y)
    assert sorted(counts[counts > 0].tolist()) == [3, 3, 3, 3]
    assert len(set(indices_of(x))) == 12
    x, y = TaskDataset(meta, [FilterLabels(meta, [3]), KShots(meta, 9, replacement=True)])[0]
    assert x.numel() == 9 and set(y.tolist()) == {3}


def test_filter_labels_and_fused_nways_kshots(data):
    meta = MetaDataset(data)
    _, y = TaskDataset(meta, [FilterLabels(meta, [7, 42]), LoadData(meta)])[0]
    assert sorted(y.tolist()) == [7] * 6 + [42] * 7
    fused = FusedNWaysKShots(meta, n=2, k=3, filter_labels=[3, 10, 20])
    for index in range(10):
        x, y = TaskDataset(meta, [fused, LoadData(meta)], seed=index)[0]
        labels = y.tolist()
        assert len(set(labels)) == 2 and set(labels) <= {3, 10, 20}
        assert sorted(labels.count(label) for label in set(labels)) == [3, 3]
        assert original_labels(x) == labels and len(set(indices_of(x))) == 6
    after_filter = [FilterLabels(meta, [7, 11, 42]), FusedNWaysKShots(meta, n=3, k=2)]
    _, y = TaskDataset(meta, after_filter)[0]
    assert sorted(y.tolist()) == [7, 7, 11, 11, 42, 42]


def test_without_load_data_a_task_holds_indices(data):
    meta = MetaDataset(data)
    data.reads = 0
    indices, y = TaskDataset(meta, [NWays(meta, 2), KShots(meta, 2)], seed=3)[0]
    assert data.reads == 0
    assert [data.y[i] for i in indices.tolist()] == y.tolist()


def test_remap_and_consecutive_labels(data):
    meta = MetaDataset(data)
    steps = [NWays(meta, 4), KShots(meta, 3), LoadData(meta), RemapLabels(meta)]
    x, y = TaskDataset(meta, [*steps, ConsecutiveLabels(meta)], seed=2)[0]
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    mapping = dict(zip(original_labels(x), y.tolist(), strict=True))
    assert len(mapping) == 4 and sorted(mapping.values()) == [0, 1, 2, 3]
    x, y = TaskDataset(meta, [*steps[:3], RemapLabels(meta, shuffle=False)], seed=2)[0]
    first_seen = list(dict.fromkeys(original_labels(x)))
    assert y.tolist() == [first_seen.index(label) for label in original_labels(x)]
    shuffled = {
        tuple(TaskDataset(meta, steps, seed=s)[0][1][[0, 3, 6, 9]].tolist()) for s in range(20)
    }
    assert len(shuffled) > 1  # shuffle=True does not keep the order of appearance


def test_tasks_are_seeded_random_access_and_sample_walks_the_stream(data):
    meta = MetaDataset(data)

    def make(seed: int, num_tasks: int = -1) -> TaskDataset:
        steps = [NWays(meta, 3), KShots(meta, 2), LoadData(meta), RemapLabels(meta)]
        return TaskDataset(meta, steps, num_tasks=num_tasks, seed=seed)

    tasks = make(5)
    later = tasks[7][0]
    assert torch.equal(tasks[7][0], later) and torch.equal(make(5)[7][0], later)
    stream = [tasks.sample()[0] for _ in range(4)]
    assert tasks.position == 4
    assert all(torch.equal(stream[i], tasks[i][0]) for i in range(4))
    assert not torch.equal(make(6)[7][0], later)
    pool = make(5, num_tasks=3)
    assert len(pool) == 3 and len(list(pool)) == 3
    drawn = [pool.sample()[0] for _ in range(12)]
    assert all(any(torch.equal(d, pool[i][0]) for i in range(3)) for d in drawn)
    with pytest.raises(IndexError, match="outside this pool of 3 tasks"):
        pool[3]
    with pytest.raises(TypeError, match="no length"):
        len(tasks)


def test_bad_familiar_arguments_say_what_to_change(data):
    meta = MetaDataset(data)
    with pytest.raises(ValueError, match="n=7 ways requested but the task has only 6 classes"):
        TaskDataset(meta, [NWays(meta, 7)])[0]
    with pytest.raises(ValueError, match="k=5 shots requested but class 3 has only 4 items"):
        TaskDataset(meta, [FilterLabels(meta, [3, 7]), KShots(meta, 5)])[0]
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        NWays(meta, 0)
    with pytest.raises(ValueError, match="k must be a positive integer, got -1"):
        KShots(meta, -1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        FusedNWaysKShots(meta, n=0)
    with pytest.raises(ValueError, match="label 5 does not occur in the dataset"):
        FilterLabels(meta, [3, 5])
    with pytest.raises(ValueError, match="n=3 ways requested but the task has only 2 classes"):
        TaskDataset(meta, [FusedNWaysKShots(meta, n=3, filter_labels=[3, 7])])[0]
    with pytest.raises(ValueError, match=r"num_tasks must be -1 \(endless\) or a positive number"):
        TaskDataset(meta, num_tasks=0)


class SuperclassDataset(Dataset):
    """torchvision style: ``targets`` holds the raw labels, ``target_transform`` maps each to
    its superclass (``y // 10``), and every item carries a third field, its index."""

    def __init__(self) -> None:
        self.targets = [label for label in (3, 7, 11, 15, 22, 28) for _ in range(4)]
        self.target_transform = lambda y: y // 10

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        y = self.targets[index]
        return torch.tensor([float(y)]), self.target_transform(y), index


def test_items_keep_their_own_labels_and_fields_under_a_target_transform():
    data = SuperclassDataset()
    meta = MetaDataset(data)
    assert meta.labels == [0, 1, 2]  # the labels the items carry, not the raw targets
    for seed in range(5):
        x, y, index = TaskDataset(meta, [NWays(meta, 2), KShots(meta, 3), LoadData(meta)],
                                  seed=seed)[0]  # fmt: skip
        assert len(set(y.tolist())) == 2 and sorted(torch.bincount(y)[y.unique()]) == [3, 3]
        assert y.tolist() == [data.targets[i] // 10 for i in index.tolist()]
        assert x[:, 0].tolist() == [float(data.targets[i]) for i in index.tolist()]
    _, y, _ = TaskDataset(meta, [NWays(meta, 2), LoadData(meta), RemapLabels(meta)])[0]
    assert sorted(set(y.tolist())) == [0, 1]


class StaleTargets(SuperclassDataset):
    """A ``targets`` attribute that no longer matches the labels the items carry."""

    def __init__(self) -> None:
        super().__init__()
        self.target_transform = None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return torch.zeros(1), self.targets[index] // 10, index


def test_an_item_whose_label_differs_from_the_index_is_refused():
    meta = MetaDataset(StaleTargets())
    assert meta.labels == [3, 7, 11, 15, 22, 28]  # taken from the attribute, without reading
    with pytest.raises(ValueError, match="carries label 0 but the MetaDataset indexed it under 3"):
        TaskDataset(meta, [FilterLabels(meta, [3]), LoadData(meta)])[0]


def test_string_labels_index_filter_and_load():
    words = ["cat", "dog", "emu", "cat", "dog", "emu", "cat", "dog", "emu"]
    data = [(torch.tensor([float(i)]), word) for i, word in enumerate(words)]
    meta = MetaDataset(data)
    assert meta.labels == ["cat", "dog", "emu"]
    assert meta.labels_to_indices["dog"] == [1, 4, 7] and meta.indices_to_labels[2] == "emu"
    x, y = TaskDataset(meta, [FilterLabels(meta, ["emu", "cat"]), KShots(meta, 2),
                              LoadData(meta)])[0]  # fmt: skip
    assert sorted(y) == ["cat", "cat", "emu", "emu"]
    assert [words[int(i)] for i in x[:, 0]] == list(y)
    indices, y = TaskDataset(meta, [NWays(meta, 1)], seed=4)[0]
    assert [words[i] for i in indices.tolist()] == list(y) and len(set(y)) == 1
    with pytest.raises(ValueError, match="label 'owl' does not occur in the dataset"):
        FilterLabels(meta, ["owl"])
