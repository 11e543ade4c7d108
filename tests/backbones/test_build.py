"""Every registered method trains and evaluates on a timm or hf backbone built through the run
builder (``model.name=timm:...`` / ``hf:...``): one meta-step's gradients reach the backbone
(or, frozen, only what follows it), and evaluation gives one score per way."""

from __future__ import annotations

import sys

import pytest
import torch

from fastmeta.algorithms.registry import algorithm_specs
from fastmeta.backbones.network import BackboneNetwork
from fastmeta.config import apply_overrides
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch
from tests.backbones.tiny import fake_timm, hf_folder, transformers_or_skip

WAYS, SHOTS, QUERIES, TASKS, CLASSES = 3, 1, 2, 2, 6
IMAGE = (1, 16, 16)  # grey images: repeated to the backbone's three channels


def episodes() -> TaskBatch:
    g = torch.Generator().manual_seed(0)

    def part(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(TASKS, WAYS * per_class, *IMAGE, generator=g)
        return x, torch.arange(WAYS).repeat_interleave(per_class).repeat(TASKS, 1)

    classes = torch.stack([torch.randperm(CLASSES, generator=g)[:WAYS] for _ in range(TASKS)])
    return TaskBatch(*part(SHOTS), *part(QUERIES), classes=classes)


def build(name: str, model: list[str]):
    inner = ["algorithm.inner_lr=0.01", "algorithm.inner_steps=1", "algorithm.test_inner_steps=1"]
    reads = algorithm_specs()[name].settings
    config = apply_overrides(RunConfig(), [
        f"algorithm.name={name}", f"sampler.ways={WAYS}", f"sampler.shots={SHOTS}",
        f"sampler.queries={QUERIES}", f"sampler.meta_batch={TASKS}", *model,
        *(o for o in inner if o.split("=")[0].split(".")[1] in reads),
    ])  # fmt: skip
    if name in ("baseline", "baselinepp"):
        config = apply_overrides(config, ["algorithm.options.finetune_epochs=2"])
    torch.manual_seed(0)
    network = build_model(config, IMAGE)
    return build_algorithm(config, network, CLASSES, IMAGE), network


def check_method(name: str, model: list[str], frozen: bool = False) -> None:
    algorithm, network = build(name, model)
    assert isinstance(network, BackboneNetwork)
    batch = episodes()
    algorithm.train()
    out = algorithm(batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    backbone = [p for p in network.backbone.parameters()]
    if frozen:
        assert all(p.grad is None for p in backbone)
    elif algorithm_specs()[name].build != "fastmeta.algorithms.anil:build_anil":  # ANIL: head only
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone), name
    algorithm.eval()
    evaluated = algorithm.evaluate(batch)
    assert evaluated.predictions.shape == (TASKS, WAYS * QUERIES, WAYS)
    assert torch.isfinite(evaluated.predictions).all()


# CAVIA's context vector is a FiLM layer placed inside conv4 or mlp (fastmeta.models.film)
NAMES = sorted(set(algorithm_specs()) - {"cavia"})
# a meta-step of these takes 5-20 s here (load ~9): the slow suite runs them
SLOW = {"imaml", "mamlpp", "anil", "boil", "metasgd", "reptile"}
METHODS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES]
HF_FAST = {"protonet", "relation", "metaoptnet-svm"}
HF_METHODS = [n if n in HF_FAST else pytest.param(n, marks=pytest.mark.slow) for n in NAMES]


@pytest.fixture
def timm_stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", fake_timm())


@pytest.mark.parametrize("name", METHODS)
def test_every_method_runs_on_a_timm_backbone(timm_stand_in, name):
    check_method(name, ["model.name=timm:fake_net"])


@pytest.mark.parametrize("name", ["r2d2", "maml", "baseline"])
def test_a_frozen_timm_backbone_gets_no_gradient(timm_stand_in, name):
    check_method(name, ["model.name=timm:fake_net", "model.freeze=all"], frozen=True)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    transformers_or_skip()
    root = tmp_path_factory.mktemp("hf")
    return {kind: hf_folder(root, kind) for kind in ("dinov2", "resnet")}


@pytest.mark.parametrize("name", HF_METHODS)
def test_every_method_runs_on_an_hf_backbone(hf_models, name):
    if algorithm_specs()[name].model_output == "feature_map":  # a map of 4x4 for Relation
        check_method(name, [f"model.name=hf:{hf_models['resnet']}", "model.input_size=32"])
    else:
        check_method(name, [f"model.name=hf:{hf_models['dinov2']}", "model.input_size=16"])
