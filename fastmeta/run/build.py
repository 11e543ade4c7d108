"""Turn a :class:`~fastmeta.run_config.RunConfig` into the objects of a run.

The one place that reads several sections: it checks the configuration against the registries
(:mod:`fastmeta.run.settings`) and hands each builder its own part: the dataset's loader its
typed options, the network builder the ``model`` section and the output its algorithm needs,
the algorithm's builder the ``algorithm`` section and its typed options.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fastmeta.algorithms.base import MetaLearner
from fastmeta.algorithms.registry import algorithm_spec, build
from fastmeta.data.store import ImageStore
from fastmeta.datasets.registry import dataset_info
from fastmeta.models.build import build_network
from fastmeta.run.settings import (
    algorithm_options,
    data_options,
    image_size,
    resolve_algorithm,
    resolve_data,
)
from fastmeta.run_config import RunConfig

if TYPE_CHECKING:
    from fastmeta.run.folder_split import FolderSplit
from fastmeta.tasks import TaskSource


@dataclass
class Sources:
    """Training stream, validation and test episode sources, the input shape, and the number
    of classes of the training stream (``None`` for regression)."""

    train: TaskSource
    val: TaskSource
    test: TaskSource
    input_shape: tuple[int, ...]
    train_classes: int | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)


def build_sources(
    config: RunConfig, device: torch.device, folder_split: FolderSplit | None = None
) -> Sources:
    """The train/val/test task sources of ``config.data`` and ``config.sampler``;
    ``folder_split`` is an image folder's class split planned for a new run (else it is read
    from ``data.split_file`` or planned afresh)."""
    data = resolve_data(config.data)
    info = dataset_info(data.dataset)
    s, e = config.sampler, config.eval
    ways, shots, queries = s.test_episodes()
    if info.tasks is not None:  # generated tasks
        generated = info.task_source()
        return Sources(
            train=generated(s.shots, s.queries, config.seed, s.meta_batch),
            val=generated(shots, queries, e.seed + 1, e.batch_size),
            test=generated(shots, queries, e.seed, e.batch_size),
            input_shape=(1,),
        )
    from fastmeta.data.taskset import TaskSet

    stores, transform = _stores(replace(config, data=data), folder_split)
    train = stores["train"]
    if data.train_classes == "trainval":
        train = ImageStore.concat([train, stores["val"]])
    train, val, test = (store.to(device) for store in (train, stores["val"], stores["test"]))
    episodes = TaskSet.from_store(
        train, s.ways, s.shots, s.queries, s.meta_batch, config.seed, transform
    )
    if data.augment != "none":  # training episodes only
        from fastmeta.data.augment import AugmentedTaskSet

        episodes = AugmentedTaskSet(train, episodes.sampler, data.augment, s.meta_batch, transform)
    return Sources(
        train=episodes,
        val=TaskSet.from_store(val, ways, shots, queries, e.batch_size, e.seed + 1, transform),
        test=TaskSet.from_store(test, ways, shots, queries, e.batch_size, e.seed, transform),
        input_shape=train.image_shape,
        train_classes=train.num_classes,
    )


def build_test_source(
    config: RunConfig, device: torch.device
) -> tuple[TaskSource, tuple[int, ...]]:
    """The test episodes of ``config.data`` alone and one example's shape: another dataset's
    test split, for testing a run trained elsewhere (``fastmeta eval RUN --on``). Its training
    split is only read for what the test needs (a folder's normalisation)."""
    from fastmeta.data.taskset import TaskSet

    s, e = config.sampler, config.eval
    ways, shots, queries = s.test_episodes()
    test_only = replace(config, sampler=replace(s, ways=ways, shots=shots, queries=queries))
    stores, transform = _stores(test_only, None)
    test = stores["test"].to(device)
    source = TaskSet.from_store(test, ways, shots, queries, e.batch_size, e.seed, transform)
    return source, test.image_shape


def _stores(
    config: RunConfig, folder_split: FolderSplit | None
) -> tuple[dict[str, ImageStore], Any]:
    """The train/val/test stores of an image dataset and the transform its episodes get."""
    info = dataset_info(config.data.dataset)
    if info.own_data:
        from fastmeta.run.folder_split import plan_for_config, split_stores

        plan = folder_split or plan_for_config(config)
        return split_stores(plan), plan.normalizer()
    options = data_options(config.data)
    given = {} if options is None else vars(options)
    size = image_size(config.data)
    stores = {
        split: info.load(split, config.data.root, size, **given)
        for split in ("train", "val", "test")
    }
    return stores, None


def build_model(config: RunConfig, input_shape: tuple[int, ...]) -> nn.Module:
    """The network; one output per way (or per regression target), or the embedding or
    feature map the algorithm asks for."""
    output = algorithm_spec(config.algorithm.name).model_output
    regression = dataset_info(config.data.dataset).image_size is None
    return build_network(
        config.model, input_shape, output, 1 if regression else config.sampler.ways
    )


def build_algorithm(
    config: RunConfig,
    model: nn.Module,
    train_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> MetaLearner:
    """The registered algorithm ``config.algorithm.name`` around ``model``.

    An algorithm with a classifier over all training classes (the transfer baselines) gets
    ``train_classes``, the training data's count, as its ``num_classes`` when the config leaves
    it unset; a value set smaller than the data's is refused. ``input_shape`` (one example's;
    default: the dataset's channels and image size) lets a builder size what follows the
    network.
    """
    spec = algorithm_spec(config.algorithm.name)
    settings = resolve_algorithm(config.algorithm, config.sampler)
    options = algorithm_options(spec, settings)
    if spec.classifier is not None and train_classes is not None:
        if options.num_classes is None:
            options = replace(options, num_classes=train_classes)
        elif options.num_classes < train_classes:
            raise ValueError(
                f"algorithm.options.num_classes={options.num_classes} but the training data has "
                f"{train_classes} classes; leave it unset to use the data's count"
            )
    return build(spec, settings, options, model, input_shape or config_input_shape(config))


def config_input_shape(config: RunConfig) -> tuple[int, ...]:
    """One example's shape as the configuration describes it (a folder's channels may be
    found only by reading it: the trainer passes the data's own shape)."""
    info = dataset_info(config.data.dataset)
    if info.image_size is None:
        return (1,)
    options = data_options(config.data)
    channels = info.channels_of(options)
    size = image_size(config.data)
    return (channels, size, size)


def build_optimizer(
    config: RunConfig, algorithm: MetaLearner
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The meta-optimizer and learning-rate schedule of ``config.optimizer`` (a cosine schedule
    spans ``train.iterations``)."""
    o = config.optimizer
    params = [p for p in algorithm.parameters() if p.requires_grad]
    if not params and config.train.iterations == 0:  # a frozen network, never stepped
        params = [nn.Parameter(torch.zeros(0))]
    if not params:
        raise ValueError(
            f"nothing to train: every parameter of {config.algorithm.name} is frozen "
            f"(model.freeze={config.model.freeze}); freeze up to a block instead, or score the "
            "frozen network as it is with train.iterations=0 (docs/BACKBONES.md)"
        )
    if o.name == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=o.lr, weight_decay=o.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
        )
    if o.schedule == "step":
        scheduler: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, o.step_size, o.gamma
        )
    elif o.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, max(1, config.train.iterations)
        )
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return optimizer, scheduler
