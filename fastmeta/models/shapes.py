"""What a network outputs for a given input shape, found by running it once."""

from __future__ import annotations

import torch
from torch import nn


def output_shape(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``model``'s output for one example of ``input_shape``, from one forward of
    two zero examples in eval mode without gradients (so no running statistic changes)."""
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    device = parameter.device if parameter is not None else torch.device("cpu")
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((2, *input_shape), dtype=dtype, device=device))
    finally:
        model.train(training)
    return tuple(out.shape[1:])


def embedding_size(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The size ``D`` of the embedding vectors ``[N, D]`` that ``model`` outputs."""
    shape = output_shape(model, input_shape)
    if len(shape) != 1:
        raise ValueError(
            f"{type(model).__name__} gives {shape} per input where embedding vectors [N, D] are "
            "needed"
        )
    return shape[0]
