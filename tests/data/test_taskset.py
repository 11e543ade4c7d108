"""TaskSet: gathered batches match their episodes; resume, fixed evaluation sets, rotations."""

from __future__ import annotations

import pytest
import torch

from fastmeta.data import EpisodeSampler, ImageStore, TaskSet
from fastmeta.tasks import TaskBatch
from tests.data.stores import random_store


def uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round().to(torch.uint8)


def images_of_class(store: ImageStore, c: int) -> torch.Tensor:
    """All images of store class ``c`` as uint8, rotated as the class says."""
    positions = torch.arange(int(store.class_sizes[c]))
    indices = store.class_image_indices(torch.tensor(c), positions)
    return torch.rot90(store.images[indices], int(store.class_turns[c]), dims=(2, 3))


def find_rows(haystack: torch.Tensor, needles: torch.Tensor) -> list[int]:
    """Index in ``haystack`` of each image in ``needles`` (random images are unique)."""
    flat_hay, flat_needles = haystack.flatten(1), needles.flatten(1)
    matches = (flat_needles.unsqueeze(1) == flat_hay.unsqueeze(0)).all(-1)
    assert bool((matches.sum(1) == 1).all()), "every gathered image comes from its class"
    return matches.int().argmax(1).tolist()


def test_batches_have_the_promised_shapes_types_and_labels():
    store = random_store([6] * 10, side=5, channels=3)
    tasks = TaskSet.from_store(store, ways=4, shots=2, queries=3, batch_size=7, seed=1)
    batch = tasks.batch(0)
    assert batch.support_x.shape == (7, 8, 3, 5, 5) and batch.query_x.shape == (7, 12, 3, 5, 5)
    assert batch.support_x.dtype == torch.float32 and batch.support_y.dtype == torch.int64
    assert float(batch.support_x.min()) >= 0.0 and float(batch.query_x.max()) <= 1.0
    assert batch.support_y.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3]] * 7
    assert batch.query_y.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]] * 7


@pytest.mark.parametrize("rotations", [False, True])
def test_each_label_holds_distinct_images_of_its_own_class(rotations):
    store = random_store([5, 8, 6, 7, 9, 5], side=4)
    if rotations:
        store = store.with_rotations()
    tasks = TaskSet.from_store(store, ways=3, shots=2, queries=3, batch_size=16, seed=5)
    batch = tasks.batch(3)
    episodes = tasks.sampler.sample(3 * 16, 16)
    for b, task in enumerate(batch):
        for label, c in enumerate(episodes.classes[b].tolist()):
            own = images_of_class(store, c)
            support = uint8(task.support_x[task.support_y == label])
            query = uint8(task.query_x[task.query_y == label])
            rows = find_rows(own, torch.cat([support, query]))
            assert len(set(rows)) == 5  # support and query disjoint, no repeats
            assert rows == episodes.positions[b, label].tolist()


def test_rotated_classes_are_drawn_per_class_not_per_task():
    store = random_store([6] * 4, side=4).with_rotations()
    tasks = TaskSet.from_store(store, ways=8, shots=1, queries=1, batch_size=50, seed=0)
    turns = store.class_turns[tasks.sampler.sample(0, 50).classes]
    mixed = [(row.unique().numel() > 1) for row in turns]
    assert any(mixed)  # one task holds classes at different rotations


def test_batches_are_random_access_and_resume_from_an_index():
    store = random_store([6] * 12)
    tasks = TaskSet.from_store(store, ways=3, shots=1, queries=2, batch_size=4, seed=2)
    stream = list(tasks.batches(0, 5))
    resumed = list(tasks.batches(3, 5))
    for a, b in zip(stream[3:], resumed, strict=True):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    again = tasks.batch(1)
    assert torch.equal(again.query_x, stream[1].query_x)
    assert torch.equal(tasks.episodes(5, 2).support_x, stream[1].support_x[1:3])
    other_seed = TaskSet.from_store(store, ways=3, shots=1, queries=2, batch_size=4, seed=3)
    assert not torch.equal(other_seed.batch(1).support_x, again.support_x)


def test_evaluation_set_is_the_same_at_any_batch_size():
    store = random_store([6] * 12)
    sets = []
    for batch_size in (1, 4, 32):
        tasks = TaskSet.from_store(store, 3, 1, 2, batch_size=batch_size, seed=99)
        batches = list(tasks.evaluation(10))
        assert sum(b.num_tasks for b in batches) == 10
        sets.append(torch.cat([b.query_x for b in batches]))
    assert torch.equal(sets[0], sets[1]) and torch.equal(sets[1], sets[2])


def test_transform_is_applied_to_every_batch():
    store = random_store([6] * 12)

    def centre(batch: TaskBatch) -> TaskBatch:
        return TaskBatch(batch.support_x - 0.5, batch.support_y, batch.query_x, batch.query_y)

    plain = TaskSet.from_store(store, 3, 1, 2, batch_size=2)
    centred = TaskSet.from_store(store, 3, 1, 2, batch_size=2, transform=centre)
    torch.testing.assert_close(centred.batch(4).support_x, plain.batch(4).support_x - 0.5)


def test_bad_taskset_arguments_say_what_to_change():
    store = random_store([6] * 12)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        TaskSet.from_store(store, 3, 1, 2, batch_size=0)
    with pytest.raises(ValueError, match=r"build the sampler from store\.class_sizes"):
        TaskSet(store, EpisodeSampler(torch.full((5,), 6), 3, 1, 2))
    uneven = random_store([6] * 5 + [4] + [6] * 6).with_rotations()
    with pytest.raises(ValueError, match=r"class 'char005/rot000' \(index 20\) has only 4"):
        TaskSet.from_store(uneven, 3, 2, 3)
    with pytest.raises(ValueError, match="num_episodes must be a positive integer"):
        next(TaskSet.from_store(store, 3, 1, 2).evaluation(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_store_gives_the_same_batches_on_the_gpu():
    store = random_store([6, 9, 7, 8, 6, 10], side=4).with_rotations()
    on_cpu = TaskSet.from_store(store, 5, 2, 3, batch_size=8, seed=1).batch(2)
    on_gpu = TaskSet.from_store(store.to("cuda"), 5, 2, 3, batch_size=8, seed=1).batch(2)
    assert on_gpu.support_x.is_cuda and on_gpu.query_y.is_cuda
    assert torch.equal(on_gpu.support_x.cpu(), on_cpu.support_x)
    assert torch.equal(on_gpu.query_x.cpu(), on_cpu.query_x)
