"""Turn a :class:`~fastmeta.run_config.RunConfig` into the objects of a run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import nn

from fastmeta.algorithms import MetaLearner
from fastmeta.algorithms.registry import algorithm_spec, build_options
from fastmeta.data.store import ImageStore
from fastmeta.models import MLP, Conv4, ResNet12
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch


class TaskSource(Protocol):
    """What the trainer needs of a task stream (``TaskSet`` and ``SineTasks`` both are one)."""

    def batch(self, index: int) -> TaskBatch: ...

    def evaluation(self, num_episodes: int) -> Iterator[TaskBatch]: ...


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


def build_sources(config: RunConfig, device: torch.device) -> Sources:
    """The train/val/test task sources of ``config.data`` and ``config.sampler``."""
    s, e = config.sampler, config.eval
    test_ways = s.test_ways or s.ways
    test_shots = s.test_shots or s.shots
    test_queries = s.test_queries or s.queries
    if config.data.dataset == "sine":
        from fastmeta.datasets.sine import SineTasks

        return Sources(
            train=SineTasks(s.shots, s.queries, config.seed, s.meta_batch),
            val=SineTasks(test_shots, test_queries, e.seed + 1, e.batch_size),
            test=SineTasks(test_shots, test_queries, e.seed, e.batch_size),
            input_shape=(1,),
        )
    from fastmeta.data.taskset import TaskSet
    from fastmeta.datasets import load_split

    transform = None
    if config.data.dataset == "folder":
        from fastmeta.datasets.folder_split import plan_for_config, split_stores

        plan = plan_for_config(config)
        stores, transform = split_stores(plan), plan.normalizer()

        def split(name: str) -> ImageStore:
            return stores[name].to(device)
    else:

        def split(name: str) -> ImageStore:
            store = load_split(
                config.data.dataset, name, root=config.data.root,
                image_size=config.data.image_size, scheme=config.data.split,
            )  # fmt: skip
            return store.to(device)

    train_store = split("train")
    if config.data.train_classes == "trainval":
        train_store = ImageStore.concat([train_store, split("val")])
    return Sources(
        train=TaskSet.from_store(
            train_store, s.ways, s.shots, s.queries, s.meta_batch, config.seed, transform
        ),
        val=TaskSet.from_store(
            split("val"), test_ways, test_shots, test_queries, e.batch_size, e.seed + 1, transform
        ),
        test=TaskSet.from_store(
            split("test"), test_ways, test_shots, test_queries, e.batch_size, e.seed, transform
        ),
        input_shape=train_store.image_shape,
        train_classes=train_store.num_classes,
    )


def build_model(config: RunConfig, input_shape: tuple[int, ...]) -> nn.Module:
    """The network; one output per way, or the embedding or feature map the algorithm asks for."""
    m = config.model
    output = algorithm_spec(config.algorithm.name).model_output
    metric = output != "logits"
    if m.name == "resnet12":
        return ResNet12(
            input_shape[0], None if metric else config.sampler.ways, m.channels,
            feature_map=output == "feature_map", drop_rate=m.drop_rate,
            drop_block_size=m.drop_block_size,
        )  # fmt: skip
    if m.drop_rate:
        raise ValueError(
            f"model.drop_rate (DropBlock) applies to model.name=resnet12, not {m.name}; set it to 0"
        )
    if output == "feature_map" and m.name == "conv4":
        from fastmeta.algorithms.relation import relation_encoder

        return relation_encoder(input_shape[0], m.hidden)
    if m.name == "mlp":
        out = 1 if config.data.dataset == "sine" else config.sampler.ways
        return MLP(input_shape[0], list(m.layers), m.hidden if metric else out, init=m.init)
    return Conv4(
        in_channels=input_shape[0],
        out_features=None if metric else config.sampler.ways,
        hidden=m.hidden,
        downsample=m.downsample,
    )


def build_algorithm(
    config: RunConfig, model: nn.Module, train_classes: int | None = None
) -> MetaLearner:
    """The registered algorithm ``config.algorithm.name`` around ``model``.

    An algorithm whose options have a ``num_classes`` field (a classifier over all training
    classes, as in the transfer baselines) gets ``train_classes``, the training data's count,
    there when the config leaves it unset; a value set smaller than the data's is refused.
    """
    spec = algorithm_spec(config.algorithm.name)
    options = build_options(spec, config.algorithm.options)
    if train_classes is not None and hasattr(options, "num_classes"):
        if options.num_classes is None:
            options = replace(options, num_classes=train_classes)
        elif options.num_classes < train_classes:
            raise ValueError(
                f"algorithm.options.num_classes={options.num_classes} but the training data has "
                f"{train_classes} classes; leave it unset to use the data's count"
            )
    algorithm = spec.build(config, model, options)
    if config.algorithm.checkpoint_inner_steps and not getattr(
        algorithm, "checkpoint_inner_steps", False
    ):
        raise ValueError(
            f"algorithm.checkpoint_inner_steps applies to maml, metasgd, anil and boil, not "
            f"{config.algorithm.name}; leave it unset"
        )
    return algorithm


def build_optimizer(
    config: RunConfig, algorithm: MetaLearner
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    o = config.optimizer
    params = [p for p in algorithm.parameters() if p.requires_grad]
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
