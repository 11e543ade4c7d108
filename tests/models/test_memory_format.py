"""``model.memory_format=channels_last``: the weights change layout, the numbers do not (float64
meta-gradients against a contiguous network's plain per-task reference), and a channels-last
run resumes exactly."""

from __future__ import annotations

import pytest
import torch

from fastmeta.algorithms import MAML, PrototypicalNetwork
from fastmeta.config import apply_overrides
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.models import Conv4
from fastmeta.models.build import build_network
from fastmeta.presets import load_config
from fastmeta.run_config import ModelConfig
from fastmeta.train.trainer import Trainer
from tests.interrupt import Interrupted, interrupt_at
from tests.reference import meta_gradient, random_classification_batch

CHANNELS_LAST = torch.channels_last


def test_channels_last_converts_the_convolutions_and_leaves_the_rest():
    network = build_network(
        ModelConfig(hidden=8, downsample="maxpool", memory_format="channels_last"),
        (3, 16, 16), "logits", 5,
    )  # fmt: skip
    convs = [m.weight for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=CHANNELS_LAST) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # a real change of layout (8 > 1 channels)
    assert network.head.weight.is_contiguous()
    plain = build_network(ModelConfig(hidden=8, downsample="maxpool"), (3, 16, 16), "logits", 5)
    assert all(m.weight.is_contiguous() for m in plain.modules() if isinstance(m, torch.nn.Conv2d))


def float64_problem(downsample: str):
    torch.manual_seed(0)
    model = Conv4(3, 3, hidden=6, downsample=downsample, blocks=2).double()
    batch = random_classification_batch(shape=(3, 8, 8))
    double = type(batch)(
        batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y
    )
    return model, double


@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("steps,first_order", [(1, False), (2, False), (2, True)])
def test_maml_meta_gradient_in_channels_last_equals_the_contiguous_reference(
    downsample, strategy, steps, first_order
):
    model, batch = float64_problem(downsample)
    expected = meta_gradient(model, batch, 0.1, steps, first_order)
    model.to(memory_format=CHANNELS_LAST)
    assert model.features[0][0].weight.is_contiguous(memory_format=CHANNELS_LAST)
    maml = MAML(model, lr=0.1, steps=steps, first_order=first_order, strategy=strategy)
    maml(batch).loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-10, atol=1e-12)


def test_protonet_gradient_in_channels_last_equals_contiguous():
    def gradient(layout: torch.memory_format) -> list[torch.Tensor]:
        model, batch = float64_problem("maxpool")
        model.head = None
        model.to(memory_format=layout)
        PrototypicalNetwork(model)(batch).loss.backward()
        return [p.grad for p in model.parameters()]

    for a, b in zip(gradient(CHANNELS_LAST), gradient(torch.contiguous_format), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_channels_last_run_resumes_exactly(tmp_path):
    folder = write_pattern_folder(tmp_path / "folder", classes=9, images=6, size=16)
    config = apply_overrides(load_config("maml-folder"), [
        f"data.root={folder}", "data.image_size=16", "data.fractions=[0.34,0.33,0.33]",
        "model.hidden=8", "model.memory_format=channels_last", "algorithm.inner_steps=1",
        "algorithm.test_inner_steps=1", "sampler.ways=3", "sampler.shots=2", "sampler.queries=2",
        "sampler.meta_batch=2", "train.iterations=6", "train.val_every=0",
        "train.checkpoint_every=3", "eval.episodes=4",
    ])  # fmt: skip
    whole = Trainer.create(config, tmp_path / "whole", progress_bar=False)
    report = whole.fit()
    interrupted = Trainer.create(config, tmp_path / "cut", progress_bar=False)
    interrupt_at(interrupted, 4)
    with pytest.raises(Interrupted):
        interrupted.fit()
    resumed = Trainer.resume(tmp_path / "cut", progress_bar=False)
    assert resumed.progress.step == 3
    resumed_report = resumed.fit()
    assert resumed_report["accuracy"] == report["accuracy"] and resumed_report["iterations"] == 6
    conv = next(p for p in resumed.algorithm.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=CHANNELS_LAST) and not conv.is_contiguous()
    expected = whole.algorithm.state_dict()
    for name, value in resumed.algorithm.state_dict().items():
        assert torch.equal(value, expected[name]), name
