"""eval.heads: test-time heads scored on a run's own test episodes, from its embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastmeta.config import apply_overrides
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.heads.encoder import WithoutHead, head_encoder
from fastmeta.heads.names import HEAD_NAMES
from fastmeta.heads.registry import HEADS
from fastmeta.presets import load_config
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import EvalConfig
from fastmeta.train.trainer import Trainer

FRACTIONS = "data.fractions=[0.34,0.33,0.33]"
SMALL = [
    "data.image_size=12", "model.hidden=8", "model.downsample=stride", "sampler.ways=3",
    "sampler.shots=2", "sampler.queries=2", FRACTIONS,
    "train.iterations=2", "train.val_every=0", "train.checkpoint_every=2", "eval.episodes=6",
    "eval.batch_size=4",
]  # fmt: skip
"""A tiny folder run: a 12 px, 8-filter Conv4, 3-way episodes, two meta-steps."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_folder(
        tmp_path_factory.mktemp("heads") / "f", classes=9, images=6, size=12
    )


def trained(folder: Path, run: Path, *settings: str) -> Trainer:
    """A ProtoNets run of two meta-steps on ``folder`` (``SMALL``), ``settings`` on top."""
    config = apply_overrides(
        load_config("protonet-folder"), [f"data.root={folder}", *SMALL, *settings]
    )
    trainer = Trainer.create(config, run, progress_bar=False)
    trainer.fit()
    return trainer


def test_the_names_are_the_registry_s():
    assert tuple(HEADS) == HEAD_NAMES


def test_an_unknown_or_repeated_head_is_refused_when_the_configuration_is_read():
    with pytest.raises(ValueError, match="'knn' is not a head; choose from prototypes"):
        EvalConfig(heads=("knn",))
    with pytest.raises(ValueError, match="names ridge twice"):
        EvalConfig(heads=("ridge", "ridge"))


def test_protonets_prototype_head_scores_each_episode_as_the_method_does(folder, tmp_path):
    """The prototypes head on ProtoNets' encoder is ProtoNets' own test, episode by episode;
    the report and the per-episode file carry every head."""
    trainer = Trainer.resume(
        trained(folder, tmp_path).run.path, eval_overrides=["eval.heads=[prototypes,ridge]"]
    )
    report = trainer.test(use_best=False, name="heads")
    assert set(report["heads"]) == {"prototypes", "ridge"}
    assert report["heads"]["prototypes"]["mean"] == pytest.approx(report["accuracy"]["mean"])
    rows = (tmp_path / "heads_episodes.csv").read_text().splitlines()
    assert rows[0] == "episode,loss,accuracy,head:prototypes,head:ridge" and len(rows) == 7
    for row in rows[1:]:
        cells = row.split(",")
        assert cells[2] == cells[3]


def test_the_gradient_family_s_heads_read_its_network_without_the_ways_wide_head(folder, tmp_path):
    trainer = trained(folder, tmp_path, "algorithm.name=maml", "algorithm.options={}")
    encoder = head_encoder(trainer.algorithm, "maml")
    assert isinstance(encoder, WithoutHead)
    x = torch.rand(4, 3, 12, 12)
    network = trainer.algorithm.model
    torch.testing.assert_close(encoder(x), network.features(x).mean(dim=(-2, -1)))
    assert isinstance(network.head, torch.nn.Linear)  # restored after the forward
    report = Trainer.resume(tmp_path, eval_overrides=["eval.heads=[logistic]"]).test(
        use_best=False, name="heads"
    )
    assert 0 <= report["heads"]["logistic"]["mean"] <= 1


def test_relation_networks_have_no_embedding_for_a_head():
    config = apply_overrides(load_config("relation-omniglot-5w1s"), [])
    algorithm = build_algorithm(config, build_model(config, (1, 28, 28)))
    with pytest.raises(ValueError, match="relation has no image embedding"):
        head_encoder(algorithm, "relation")
