"""Adapting a trained model to new classes: probabilities against plain per-task references."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fastmeta.config import apply_overrides
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.predict import FewShotModel, Preprocessing, load
from fastmeta.predict.model import run_preprocessing
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run.checkpoint import CheckpointMismatchError, model_fingerprint, save_best
from fastmeta.run_config import RunConfig

SIZE = 12
PREP = Preprocessing(SIZE, "RGB", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def few_shot_model(algorithm: str, ways: int = 5, *settings: str) -> FewShotModel:
    """An untrained (seeded) model: adaptation is checked, not what training learned."""
    config = apply_overrides(
        RunConfig(),
        [f"algorithm.name={algorithm}", "algorithm.inner_lr=0.3", "algorithm.test_inner_steps=2",
         "algorithm.inner_loss_scale=2", "model.hidden=8", f"sampler.ways={ways}",
         "sampler.queries=1", "data.dataset=folder", *settings],
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_algorithm(config, build_model(config, (3, SIZE, SIZE))).eval()
    return FewShotModel(config, model, PREP, Path("unused.pt"))


def episode(classes: int, shots: int = 2, queries: int = 4) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    support = torch.rand(classes * shots, 3, SIZE, SIZE, generator=generator)
    labels = torch.arange(classes).repeat_interleave(shots)
    return support, labels, torch.rand(queries, 3, SIZE, SIZE, generator=generator)


def test_maml_adapts_with_test_steps_like_a_plain_autograd_loop() -> None:
    model = few_shot_model("maml", ways=5)
    support, labels, query = episode(classes=3)  # fewer classes than the head's 5 outputs
    classifier = model.adapt(support, labels, ["a", "b", "c"])
    network = copy.deepcopy(model.algorithm.model)
    params = list(network.parameters())
    for _ in range(2):
        loss = 2 * F.cross_entropy(network(PREP.prepare(support)), labels)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                param -= 0.3 * grad
    with torch.no_grad():  # the support set with its own batch statistics, as in adaptation
        expected = network(PREP.prepare(support))[:, :3].softmax(-1)
    got = classifier.predict(support)
    assert got.shape == (6, 3) and classifier.classes == ["a", "b", "c"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert classifier.predict(query).shape == (4, 3)


def test_maml_refuses_more_classes_than_its_head_has_outputs() -> None:
    support, labels, _ = episode(classes=6)
    with pytest.raises(ValueError, match="support set has 6 classes but this model was meta-tr"):
        few_shot_model("maml", ways=5).adapt(support, labels)


def test_protonet_scores_distances_to_support_class_means() -> None:
    model = few_shot_model("protonet")
    support, labels, _ = episode(classes=6, shots=3)  # any number of classes
    with torch.no_grad():  # the support set embedded alone, with its batch statistics
        embedded = model.algorithm.encoder(PREP.prepare(support))
        means = torch.stack([embedded[labels == c].mean(0) for c in range(6)])
        expected = (-(torch.cdist(embedded, means) ** 2)).softmax(-1)
    got = model.adapt(support, labels).predict(support)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("algorithm", ["maml", "protonet", "matching", "anil"])
def test_a_prediction_does_not_depend_on_the_other_images_of_its_batch(algorithm: str) -> None:
    classifier = few_shot_model(algorithm).adapt(*episode(classes=4)[:2])
    _, _, queries = episode(classes=4, queries=9)
    together = classifier.predict(queries)
    alone = torch.cat([classifier.predict(queries[i : i + 1]) for i in range(9)])
    reordered = classifier.predict(queries.flip(0)).flip(0)
    torch.testing.assert_close(alone, together, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(reordered, together, atol=1e-6, rtol=1e-5)


def test_the_transductive_protocol_scores_queries_with_their_episode() -> None:
    model = few_shot_model("protonet", ways=5)  # queries=1: groups of 5 queries
    support, labels, queries = episode(classes=4, queries=5)
    classifier = model.adapt(support, labels, transductive=True)
    with torch.no_grad():  # one episode, as fastmeta eval scores it
        embedded = model.algorithm.encoder(PREP.prepare(torch.cat([support, queries])))
        means = torch.stack([embedded[:8][labels == c].mean(0) for c in range(4)])
        expected = (-(torch.cdist(embedded[8:], means) ** 2)).softmax(-1)
    torch.testing.assert_close(classifier.predict(queries), expected, atol=1e-5, rtol=1e-4)
    alone = classifier.predict(queries[:1])
    assert not torch.allclose(alone, expected[:1], atol=1e-4)  # batch statistics moved it


@pytest.mark.parametrize(
    "algorithm", ["maml", pytest.param("protonet", marks=pytest.mark.protonet_export)]
)
def test_export_gives_the_same_probabilities_with_torch_alone(algorithm: str, tmp_path: Path):
    classifier = few_shot_model(algorithm).adapt(*episode(classes=4)[:2], ["w", "x", "y", "z"])
    _, _, query = episode(classes=4, queries=5)  # one scoring group (5 ways x 1 query)
    path = classifier.export(tmp_path / "classifier.pt2")
    extra = {"fastmeta.json": ""}
    exported = torch.export.load(path, extra_files=extra).module()
    info = json.loads(extra["fastmeta.json"])
    assert info["classes"] == ["w", "x", "y", "z"] and info["image_size"] == SIZE
    with torch.no_grad():
        torch.testing.assert_close(exported(query), classifier.predict(query), atol=1e-5, rtol=0)


@pytest.mark.protonet_export
def test_export_of_a_transformers_backbone_gives_the_same_probabilities(tmp_path: Path) -> None:
    from tests.backbones.tiny import hf_folder, transformers_or_skip

    transformers_or_skip()  # the frozen-backbone path of --backbone hf:...: ProtoNets on a ViT
    model = few_shot_model("protonet", 5, f"model.name=hf:{hf_folder(tmp_path, 'dinov2')}")
    classifier = model.adapt(*episode(classes=4)[:2], ["w", "x", "y", "z"])
    _, _, query = episode(classes=4, queries=5)
    exported = torch.export.load(classifier.export(tmp_path / "classifier.pt2")).module()
    with torch.no_grad():
        torch.testing.assert_close(exported(query), classifier.predict(query), atol=1e-5, rtol=0)


def test_folders_files_and_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    new = write_pattern_folder(tmp_path / "new", classes=3, images=4, size=SIZE, query=2)
    (new / "query" / "notes.txt").write_text("not an image")
    (new / "support" / "empty").mkdir()
    classifier = few_shot_model("protonet").adapt(new / "support")
    assert classifier.classes == ["pattern00", "pattern01", "pattern02"]
    assert classifier.support_report.empty_classes == ["empty"]
    found = classifier.classify(new / "query")
    assert len(found.files) == 6 and found.skipped == [("notes.txt", found.skipped[0][1])]
    assert found.skipped[0][1].startswith("not an image")
    assert found.truth == [f"pattern0{i // 2}" for i in range(6)]
    predicted = found.predicted
    right = sum(p == t for p, t in zip(predicted, found.truth, strict=True))
    assert found.accuracy == right / 6
    confusion = found.confusion()
    assert confusion.sum() == 6 and confusion.trace() == right
    assert confusion.sum(1).tolist() == [2, 2, 2]  # rows: the true classes
    rows = list(csv.reader(found.write_csv(tmp_path / "p.csv", top_k=2).open()))
    assert rows[0] == ["file", "predicted_class", "confidence", "true_class", "correct",
                       "top2_class", "top2_prob", "prob_pattern00", "prob_pattern01",
                       "prob_pattern02"]  # fmt: skip
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["file"] == "pattern00/img002.bmp" and first["true_class"] == "pattern00"
    probabilities = [float(first[f"prob_pattern0{i}"]) for i in range(3)]
    assert abs(sum(probabilities) - 1) < 1e-4 and len(rows) == 7
    assert float(first["confidence"]) == max(probabilities) >= float(first["top2_prob"])
    assert first["predicted_class"] == f"pattern0{probabilities.index(max(probabilities))}"
    assert first["correct"] == str(int(first["predicted_class"] == "pattern00"))
    assert found.images is not None and found.images.shape == (6, 3, SIZE, SIZE)
    by_file = classifier.classify([new / "query" / "pattern01" / "img003.gif"])
    assert by_file.truth == ["pattern01"]  # the folder holding a file names its class
    assert classifier.classify(new / "query" / "pattern01").truth == [None, None]
    one = str(new / "query" / "pattern01" / "img003.gif")
    assert classifier.predict([one]).shape == (1, 3)
    with pytest.raises(ValueError, match=r"cannot read .*notes\.txt: not an image"):
        classifier.predict([one, str(new / "query" / "notes.txt")])


def test_load_checks_the_run_and_its_preprocessing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no config"):
        load(tmp_path)
    model = few_shot_model("protonet")
    config = apply_overrides(model.config, ["data.dataset=omniglot", f"data.image_size={SIZE}"])
    assert run_preprocessing(config, tmp_path) == Preprocessing(SIZE, "L", invert=True)
    with pytest.raises(ValueError, match="sine regression"):
        run_preprocessing(apply_overrides(config, ["data.dataset=sine"]), tmp_path)
    (tmp_path / "config.yaml").write_text("data: {dataset: omniglot, image_size: 12}\n")
    with pytest.raises(FileNotFoundError, match="has no checkpoint yet"):
        load(tmp_path)
    torch.manual_seed(0)
    omniglot = apply_overrides(config, ["data.image_size=12"])
    algorithm = build_algorithm(omniglot, build_model(omniglot, (1, SIZE, SIZE)))
    (tmp_path / "config.yaml").write_text(
        "data: {dataset: omniglot, image_size: 12}\n"
        "algorithm: {name: protonet}\nmodel: {hidden: 8}\nsampler: {queries: 1}\n"
    )
    path = save_best(
        tmp_path, {"algorithm": algorithm.state_dict()},
        fingerprint={"model": model_fingerprint(algorithm)},
    )  # fmt: skip
    loaded = load(path)  # a checkpoint file inside RUN_DIR/checkpoints/
    assert loaded.preprocessing.invert and loaded.checkpoint == path
    for mine, theirs in zip(loaded.algorithm.parameters(), algorithm.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    (tmp_path / "config.yaml").write_text(  # now it describes another model
        "data: {dataset: omniglot, image_size: 12}\n"
        "algorithm: {name: protonet}\nmodel: {hidden: 16}\nsampler: {queries: 1}\n"
    )
    with pytest.raises(CheckpointMismatchError, match="model"):
        load(path)


def test_a_benchmark_run_of_a_transfer_baseline_loads_with_its_class_count(tmp_path: Path) -> None:
    from fastmeta.config import dump_yaml

    config = apply_overrides(
        RunConfig(), ["algorithm.name=baseline", "model.hidden=8", "model.downsample=maxpool"]
    )
    torch.manual_seed(0)
    trained = build_algorithm(config, build_model(config, (1, 28, 28)), train_classes=7)
    (tmp_path / "config.yaml").write_text(dump_yaml(config))
    save_best(
        tmp_path, {"algorithm": trained.state_dict()}, step=1,
        fingerprint={"model": model_fingerprint(trained)},
    )  # fmt: skip
    loaded = load(tmp_path).algorithm
    assert loaded.classifier.weight.shape == (7, trained.classifier.weight.shape[1])
    torch.testing.assert_close(loaded.classifier.weight, trained.classifier.weight)
