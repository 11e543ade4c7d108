"""learn2learn's vision API: the models' structure and initialisation, and ``get_tasksets`` for
every benchmark on real Omniglot and on tiny copies of the other datasets' real formats."""

from __future__ import annotations

import inspect
import os
import random
from pathlib import Path

import pytest
import torch
from torch import nn

import fastmeta.compat.learn2learn as l2l
from fastmeta.compat.learn2learn.vision import models
from fastmeta.compat.learn2learn.vision.benchmarks import EpisodeTaskset, get_tasksets
from fastmeta.data import ImageStore
from tests.datasets.test_cifar import make_root
from tests.datasets.test_cub import build_tree
from tests.datasets.test_tieredimagenet import images_for, real_classes, write_release


@pytest.mark.parametrize(
    ("model", "shape", "features"),
    [
        (models.OmniglotFC(28**2, 5), (2, 1, 28, 28), 64),
        (models.OmniglotCNN(5), (2, 1, 28, 28), 64),
        (models.MiniImagenetCNN(5), (2, 3, 84, 84), 1600),
        (models.CNN4(5, hidden_size=32, layers=2), (2, 3, 84, 84), 800),
        (models.ResNet12(5), (2, 3, 32, 32), 640),
        (models.ResNet12(5, hidden_size=2048, avg_pool=False, wider=False), (2, 3, 32, 32), 2048),
    ],
)
def test_models_are_features_then_a_classifier(model, shape, features):
    model.eval()
    x = torch.randn(*shape)
    assert model.features(x).shape == (2, features)
    assert model(x).shape == (2, 5)
    torch.testing.assert_close(model(x), model.classifier(model.features(x)))


def test_wide_resnet_28_10():
    model = models.WRN28(5)
    assert sum(p.numel() for p in model.parameters()) == 36_482_880 + 640 * 5 + 5
    assert model.features(torch.randn(1, 3, 16, 16)).shape == (1, 640)


def test_models_keep_learn2learn_s_layers_and_initialisation():
    torch.manual_seed(0)
    assert models.MiniImagenetCNN is models.CNN4
    fc = models.OmniglotFC(784, 5)
    assert fc.classifier.weight.abs().max() <= 0.02 and torch.all(fc.classifier.bias == 0)
    norm = fc.features[1][0].normalize
    assert not norm.track_running_stats and norm.eps == 1e-3
    block = models.ConvBlock(3, 8, 3, max_pool=True)
    assert isinstance(block.max_pool, nn.MaxPool2d) and block.conv.stride == (1, 1)
    assert torch.all((block.normalize.weight >= 0) & (block.normalize.weight <= 1))
    assert block.normalize.track_running_stats and torch.all(block.conv.bias == 0)
    strided = models.ConvBlock(3, 8, 3, max_pool=False)
    assert strided.conv.stride == (2, 2) and isinstance(strided.max_pool, nn.Identity)
    assert len(models.ConvBase(hidden=8, layers=3)) == 3
    cnn = models.OmniglotCNN(5, hidden_size=8)
    assert cnn.features[1] is cnn.base and torch.all(cnn.classifier.bias == 0)
    assert not any(k.startswith("base.") for k in cnn.state_dict())


def test_get_tasksets_signature_and_errors():
    empty = inspect.Parameter.empty
    assert [(p.name, p.default) for p in inspect.signature(get_tasksets).parameters.values()] == [
        ("name", empty), ("train_ways", 5), ("train_samples", 10), ("test_ways", 5),
        ("test_samples", 10), ("num_tasks", -1), ("root", "~/data"), ("device", None),
        ("kwargs", empty),
    ]  # fmt: skip
    assert l2l.vision.benchmarks.list_tasksets() == [
        "omniglot", "mini-imagenet", "tiered-imagenet", "fc100", "cifarfs", "cub",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown benchmark 'imagenet': choose one of omniglot"):
        get_tasksets("imagenet")
    with pytest.raises(TypeError, match=r"unknown argument\(s\) \['colour'\]"):
        get_tasksets("omniglot", colour=True)
    with pytest.raises(ValueError, match="data_augmentation='lee2019' is not available here"):
        get_tasksets("mini-imagenet", data_augmentation="lee2019")


def tiny_store() -> ImageStore:
    images = torch.arange(6 * 4, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 1, 2, 2)
    return ImageStore(images.contiguous(), torch.arange(6).repeat_interleave(4), list("abcdef"))


def pixels(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0] * 255).round().long().tolist()


def test_episode_tasksets_behave_like_learn2learn_s():
    random.seed(0)
    endless = EpisodeTaskset(tiny_store(), ways=3, samples=2)
    x, y = endless.sample()
    assert x.shape == (6, 1, 2, 2) and y.tolist() == [0, 0, 1, 1, 2, 2] and len(endless) == 1
    for image, label in zip(pixels(x), y.tolist(), strict=True):
        assert pixels(x)[2 * label] // 4 == image // 4  # one class per label
    assert len({tuple(pixels(endless[0][0])) for _ in range(20)}) > 5  # new tasks
    pool = EpisodeTaskset(tiny_store(), ways=2, samples=3, num_tasks=3)
    fixed = [pixels(pool[i][0]) for i in range(3)]
    assert [pixels(x) for x, _ in pool] == fixed and pixels(pool.sample()[0]) in fixed
    with pytest.raises(IndexError, match="outside this pool of 3 tasks"):
        pool[3]
    random.seed(5)
    first = pixels(EpisodeTaskset(tiny_store(), 2, 2).sample()[0])
    random.seed(5)
    assert pixels(EpisodeTaskset(tiny_store(), 2, 2).sample()[0]) == first


def data_root() -> Path:
    base = os.environ.get("FASTMETA_DATA")
    if not base:
        pytest.skip("FASTMETA_DATA is not set; these tests read $FASTMETA_DATA/<dataset>")
    return Path(base)


def test_omniglot_tasksets_are_maml_s_split_of_the_real_characters():
    tasksets = get_tasksets("omniglot", train_samples=2, test_ways=3, test_samples=4,
                            root=str(data_root()))  # fmt: skip
    classes = [taskset.store.class_names for taskset in tasksets]
    assert [len(c) for c in classes] == [4 * 1100, 4 * 100, 4 * 423]
    characters = [{name.rsplit("/", 1)[0] for name in names} for names in classes]
    assert not (characters[0] & characters[1] or characters[0] & characters[2])
    x, y = tasksets.train.sample()
    assert x.shape == (10, 1, 28, 28) and y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert float(x.min()) >= 0.0 and float(x.max()) == 1.0
    x, y = tasksets.test.sample()
    assert x.shape == (12, 1, 28, 28) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def tiered(base: Path) -> Path:
    root = base / "tieredimagenet"
    for split in ("train", "val", "test"):
        names, general, general_of = real_classes(split)
        write_release(root, split, images_for(len(names), size=84), names, general, general_of)
    return base


def cub(base: Path) -> Path:
    build_tree(base / "cub")
    return base


@pytest.mark.parametrize(
    ("name", "build", "shape", "classes"),
    [
        ("cifarfs", lambda base: make_root(base, "cifar-fs").parent, (3, 32, 32), (64, 16, 20)),
        ("fc100", lambda base: make_root(base, "fc100").parent, (3, 32, 32), (60, 20, 20)),
        ("tiered-imagenet", tiered, (3, 84, 84), (4, 4, 4)),
        ("cub", cub, (3, 84, 84), (100, 50, 50)),
    ],
)
def test_every_other_benchmark_on_a_copy_of_its_real_format(tmp_path, name, build, shape, classes):
    data_root()
    root = build(tmp_path / "data")
    tasksets = get_tasksets(name, train_ways=2, train_samples=2, test_ways=3, test_samples=1,
                            num_tasks=4, root=str(root), cache_dir=tmp_path / "cache")  # fmt: skip
    assert tuple(t.store.num_classes for t in tasksets) == classes
    x, y = tasksets.train.sample()
    assert x.shape == (4, *shape) and x.dtype == torch.float32 and y.tolist() == [0, 0, 1, 1]
    x, y = tasksets.validation[3]
    assert x.shape == (3, *shape) and y.tolist() == [0, 1, 2] and len(tasksets.test) == 4
