"""BatchNorm at prediction time: normalise with the support set's statistics, not the queries'.

The networks of the presets (Conv4, ResNet-12) normalise with each batch's own statistics
(``track_running_stats=False``), in training and in ``fastmeta eval`` alike: a query's score
then depends on the other queries of its episode (the transductive protocol of the benchmarks).
For labelling a user's images that is wrong: a picture's class must not change with the others
sent with it. :func:`freeze_to_support` records, layer by layer, the mean and variance each such
layer normalises the support set with, and fixes them as the layer's running statistics, so
every later batch, of any size, is normalised the same way.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

_BatchNorm = nn.modules.batchnorm._BatchNorm


def batch_statistics_layers(network: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``network`` that normalise with each batch's statistics."""
    return [m for m in network.modules() if isinstance(m, _BatchNorm) and not m.track_running_stats]


def freeze_to_support(network: nn.Module, support_x: Tensor) -> nn.Module:
    """A copy of ``network`` (in eval mode) whose batch-statistics BatchNorm layers use the
    statistics they compute on ``support_x`` for every later input.

    ``network(support_x)`` is run once; each such layer's input mean and (biased) variance over
    the batch and spatial positions become its running statistics, so the copy gives the support
    set exactly the outputs it gave before, and each query an output of its own. A network
    without such layers is returned as a copy, unchanged.
    """
    frozen = copy.deepcopy(network).eval()
    layers = batch_statistics_layers(frozen)
    if not layers:
        return frozen
    recorded: dict[int, tuple[Tensor, Tensor]] = {}

    def record(layer: nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.dim())]
        recorded[id(layer)] = (x.mean(dims), x.var(dims, unbiased=False))

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        with torch.no_grad():
            frozen(support_x)
    finally:
        for hook in hooks:
            hook.remove()
    for layer in layers:
        mean, var = recorded[id(layer)]
        layer.register_buffer("running_mean", mean.detach().clone())
        layer.register_buffer("running_var", var.detach().clone())
        layer.register_buffer("num_batches_tracked", torch.tensor(1, device=mean.device))
        layer.track_running_stats = True
    return frozen
