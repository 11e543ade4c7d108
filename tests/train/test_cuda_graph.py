"""The captured meta-step: replays equal eager meta-steps on CUDA; refuses other devices."""

from __future__ import annotations

import pytest
import torch

from fastmeta.algorithms.maml import MAML
from fastmeta.models import Conv4
from fastmeta.train.cuda_graph import CapturedMetaStep
from tests.reference import random_classification_batch


def test_refuses_a_batch_off_cuda():
    maml = MAML(Conv4(1, 3, hidden=4, blocks=2), lr=0.1)
    with pytest.raises(RuntimeError, match="accumulate_gradients"):
        CapturedMetaStep(maml, random_classification_batch())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("strategy,chunk_size", [("vmap", None), ("vmap", 2), ("loop", None)])
def test_replays_match_eager_meta_steps(strategy, chunk_size):
    torch.manual_seed(0)
    maml = MAML(Conv4(1, 3, hidden=8, blocks=2), lr=0.1, steps=2, strategy=strategy).cuda()
    batches = [random_classification_batch(tasks=4, seed=s).to("cuda") for s in range(3)]
    step = CapturedMetaStep(maml, batches[0], chunk_size)
    for batch in batches[1:]:
        maml.zero_grad(set_to_none=True)
        eager = maml.accumulate_gradients(batch, chunk_size)
        expected = [p.grad.clone() for p in maml.parameters()]
        maml.zero_grad(set_to_none=True)
        replayed = step(batch)
        torch.testing.assert_close(replayed.loss, eager.loss)
        for param, grad in zip(maml.parameters(), expected, strict=True):
            torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="one shape only"):
        step(random_classification_batch(tasks=2).to("cuda"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["device=cpu"], "train.cuda_graph replays a captured CUDA graph; this run is on cpu"),
        (["device=cpu", "algorithm.name=reptile"], "reptile's meta-step follows a schedule"),
    ],
)
def test_the_trainer_refuses_a_cuda_graph_it_cannot_replay(overrides, message, tmp_path):
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    config = apply_overrides(load_config("sine-maml"), ["train.cuda_graph=true", *overrides])
    with pytest.raises(ValueError, match=message):
        Trainer(config, tmp_path / "run", progress_bar=False)
