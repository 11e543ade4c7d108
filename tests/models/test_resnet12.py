"""ResNet-12: shapes, size, and the functional engine (functional_call, vmap) against a loop."""

from __future__ import annotations

import pytest
import torch

from fastmeta.config import apply_overrides
from fastmeta.functional.params import functional_forward, module_state
from fastmeta.models import ResNet12
from fastmeta.run.build import build_model
from fastmeta.run_config import RunConfig

SMALL = (4, 6, 8, 10)


def test_output_shapes():
    x = torch.randn(3, 3, 84, 84)
    assert ResNet12(3, None, SMALL)(x).shape == (3, 10)
    assert ResNet12(3, 5, SMALL)(x).shape == (3, 5)
    assert ResNet12(3, None, SMALL, feature_map=True)(x).shape == (3, 10, 5, 5)
    assert ResNet12(1, None, SMALL, feature_map=True)(torch.randn(2, 1, 28, 28)).shape == (
        2, 10, 1, 1,
    )  # fmt: skip


def test_default_widths_give_metaoptnets_size():
    """64-160-320-640 without DropBlock: about 12.4 M parameters, as MetaOptNet reports."""
    count = sum(p.numel() for p in ResNet12().parameters())
    assert 12.4e6 < count < 12.5e6


def test_vmapped_functional_forward_matches_a_per_task_loop():
    """Per-task weights (as an inner loop makes them) under vmap, against calling a copy of
    the module per task; BatchNorm uses each task's batch statistics."""
    torch.manual_seed(0)
    model = ResNet12(1, 4, SMALL)
    params, buffers = module_state(model)
    tasks = 3
    batched = {n: p.detach() + 0.01 * torch.randn(tasks, *p.shape) for n, p in params.items()}
    x = torch.randn(tasks, 5, 1, 28, 28)
    out = torch.func.vmap(lambda p, xi: functional_forward(model, p, buffers, xi))(batched, x)
    for t in range(tasks):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(batched[n][t])
        torch.testing.assert_close(out[t], model(x[t]), rtol=1e-4, atol=1e-5)


def test_gradient_through_vmap_matches_a_loop():
    torch.manual_seed(1)
    model = ResNet12(1, 3, SMALL)
    params, buffers = module_state(model)
    x, y = torch.randn(2, 4, 1, 28, 28), torch.randint(0, 3, (2, 4))

    def loss(xi, yi):
        logits = functional_forward(model, params, buffers, xi)
        return torch.nn.functional.cross_entropy(logits, yi)

    vmapped = torch.func.vmap(loss)(x, y).mean()
    looped = torch.stack([loss(x[t], y[t]) for t in range(2)]).mean()
    grads = torch.autograd.grad(vmapped, list(params.values()))
    expected = torch.autograd.grad(looped, list(params.values()))
    torch.testing.assert_close(vmapped, looped)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def test_built_from_a_run_config():
    config = apply_overrides(
        RunConfig(), ["algorithm.name=r2d2", "model.name=resnet12", "model.channels=[4,6,8,10]"]
    )
    model = build_model(config, (3, 84, 84))
    assert isinstance(model, ResNet12) and model.head is None and not model.feature_map


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="four positive widths"):
        ResNet12(channels=(64, 160, 320))
    with pytest.raises(ValueError, match="out_features=None"):
        ResNet12(out_features=5, feature_map=True)
