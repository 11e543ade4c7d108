"""The image benchmarks' presets (mini-ImageNet, tiered-ImageNet, CIFAR-FS, FC100, CUB): each
states its paper and table, loads, resolves and builds its network and method; the MAML family
trains unaugmented; the other benchmarks' presets train on a tiny copy of their real format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fastmeta.cli import main
from fastmeta.config import apply_overrides
from fastmeta.presets import load_config, preset_names, preset_text
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run.settings import image_size, resolve_config

BENCHMARKS = {
    "miniimagenet": "miniimagenet",
    "tieredimagenet": "tieredimagenet",
    "cifarfs": "cifar-fs",
    "fc100": "fc100",
    "cub": "cub",
}
PRESETS = sorted(name for name in preset_names() if any(f"-{tag}-" in name for tag in BENCHMARKS))
MINI_METHODS = ("maml", "fomaml", "protonet", "matching", "relation", "anil", "reptile",
                "metaoptnet-svm", "r2d2", "baseline", "baselinepp")  # fmt: skip
UNAUGMENTED = ("maml", "fomaml", "anil", "reptile", "protonet", "matching", "relation")
RECIPES = ("metabaseline", "pmf")  # later stages of a pipeline: they start from other weights


def method_of(name: str) -> str:
    return name.rsplit("-", 2)[0]


def test_every_method_has_both_mini_imagenet_presets() -> None:
    for method in MINI_METHODS:
        for shots in (1, 5):
            assert f"{method}-miniimagenet-5w{shots}s" in PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_cites_its_paper_and_states_its_protocol(name: str) -> None:
    text = preset_text(name)
    comment = " ".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    assert re.search(r"et al\. 20\d\d", comment) and "Table" in comment, name
    assert re.search(r"\d+ episodes", comment), name
    assert re.search(r"quer(y|ies) per class", comment), name
    config = load_config(name)
    interval = r"\d+\.\d+ \+- \d+\.\d+ %" if method_of(name) != "pmf" else r"\d+\.\d %.*not checked"
    assert config.reference and re.search(interval, config.reference)
    assert "Table" in config.reference
    ways, shots, queries = config.sampler.test_episodes()
    assert (ways, f"5w{shots}s") == (5, name.rsplit("-", 1)[1]), name
    assert queries in (1, 15, 16) and config.eval.episodes in (600, 1000)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_resolves(name: str) -> None:
    config = resolve_config(load_config(name))
    assert config.data.dataset == BENCHMARKS[name.rsplit("-", 2)[1]]


@pytest.mark.parametrize("name", [name for name in PRESETS if name.endswith("5w1s")])
def test_preset_builds(name: str) -> None:
    """The 5-shot preset of each pair differs only in its episodes: building one suffices."""
    config = resolve_config(load_config(name))
    assert config.data.dataset == BENCHMARKS[name.rsplit("-", 2)[1]]
    if method_of(name) == "pmf":
        pytest.skip("a pretrained DINO ViT-B needs the hf extra and internet; tests/backbones")
    if method_of(name) in RECIPES:  # the first stage's weights are tested in test_weights
        config = resolve_config(apply_overrides(load_config(name), ["model.weights=null"]))
    elif method_of(name) in UNAUGMENTED:
        assert config.data.augment == "none", "these papers train without augmentation"
    else:
        assert config.data.augment != "none"
    size = image_size(config.data)
    shape = (3, size, size)
    model = build_model(config, shape)
    algorithm = build_algorithm(config, model, train_classes=64, input_shape=shape)
    assert sum(p.numel() for p in algorithm.parameters()) > 0


def test_mini_imagenet_presets_use_the_papers_networks() -> None:
    for name in PRESETS:
        config = load_config(name)
        if method_of(name) == "pmf":
            assert (config.model.name, config.model.pretrained) == ("hf:facebook/dino-vitb16", True)
        elif method_of(name) in ("metaoptnet-svm", "r2d2", "metabaseline"):
            assert config.model.name == "resnet12" and config.model.channels == (64, 160, 320, 640)
        elif method_of(name) in ("maml", "fomaml", "anil", "reptile"):
            assert (config.model.name, config.model.hidden) == ("conv4", 32)
        else:
            assert (config.model.name, config.model.hidden) == ("conv4", 64)
    assert load_config("protonet-miniimagenet-5w1s").sampler.ways == 30
    assert load_config("protonet-miniimagenet-5w5s").sampler.ways == 20


TINY = ["sampler.ways=2", "sampler.queries=1", "sampler.meta_batch=1", "sampler.test_queries=1",
        "train.iterations=1", "train.val_every=0", "train.checkpoint_every=1",
        "eval.episodes=2", "eval.batch_size=2", "model.hidden=4", "model.channels=[4,4,4,4]",
        "algorithm.options.finetune_epochs=1"]  # fmt: skip
OTHERS = [name for name in PRESETS if "-miniimagenet-" not in name and name.endswith("5w1s")]


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_other_benchmarks_presets_train_on_their_real_format(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_cli_datasets import FIXTURES

    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    dataset = BENCHMARKS[name.rsplit("-", 2)[1]]
    data = FIXTURES[dataset](tmp_path)  # skips without $FASTMETA_DATA (the real split lists)
    data = [item for item in data if not item.startswith("data.image_size")]
    config = load_config(name)
    tiny = [item for item in TINY if _applies(item, config.algorithm.name)]
    ways = [] if config.sampler.queries else ["sampler.ways=2", "sampler.queries=0"]
    shots = [f"sampler.shots={min(config.sampler.shots, 1)}", "sampler.test_shots=1"]
    run = tmp_path / "run"
    argv = ["train", name, *data, *tiny, *ways, *shots, "data.image_size=16"]
    assert main([*argv, "--out", str(run), "--no-progress"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["dataset"] == dataset and report["iterations"] == 1
    assert torch.isfinite(torch.tensor(report["accuracy"]["mean"]))


def _applies(item: str, algorithm: str) -> bool:
    if item.startswith("algorithm.options.finetune"):
        return algorithm in ("baseline", "baselinepp")
    return True
