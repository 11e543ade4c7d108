"""``fastmeta adapt`` and ``fastmeta export`` on a small saved run: the CSV with top-k and
confidence, accuracy and the confusion matrix for class-named query folders, the contact sheet,
``--device``, and one-line refusals."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from fastmeta.cli import main
from fastmeta.config import apply_overrides, dump_yaml
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run.checkpoint import model_fingerprint, save_best
from fastmeta.run_config import RunConfig

SIZE = 12


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) ProtoNets run on 12x12 grey images, saved as training saves it."""
    path = tmp_path_factory.mktemp("run")
    config = apply_overrides(
        RunConfig(),
        ["algorithm.name=protonet", "model.hidden=8", "sampler.queries=1",
         "data.dataset=omniglot", f"data.image_size={SIZE}"],
    )  # fmt: skip
    torch.manual_seed(0)
    algorithm = build_algorithm(config, build_model(config, (1, SIZE, SIZE)))
    (path / "config.yaml").write_text(dump_yaml(config))
    save_best(
        path, {"algorithm": algorithm.state_dict()}, step=1,
        fingerprint={"model": model_fingerprint(algorithm)},
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def new(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "new"
    return write_pattern_folder(root, classes=3, images=6, size=SIZE, query=3, seed=2)


def test_adapt_writes_top_k_and_scores_class_named_queries(
    run_dir: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.csv"
    argv = ["adapt", str(run_dir), "--support", str(new / "support"), "--query",
            str(new / "query"), "--out", str(out), "--top-k", "2", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and list(rows[0])[:7] == [
        "file", "predicted_class", "confidence", "true_class", "correct", "top2_class",
        "top2_prob",
    ]  # fmt: skip
    right = sum(r["correct"] == "1" for r in rows)
    assert right == sum(r["true_class"] == r["predicted_class"] for r in rows)
    assert f"accuracy {right}/9 = {100 * right / 9:.1f} %" in printed
    matrix = printed.split("confusion matrix")[1].splitlines()[2:5]
    counts = [[int(n) for n in line.split()[2:5]] for line in matrix]
    assert [line.split()[:2] for line in matrix] == [["0", "pattern00"], ["1", "pattern01"],
                                                     ["2", "pattern02"]]  # fmt: skip
    assert [sum(row) for row in counts] == [3, 3, 3]
    assert sum(counts[i][i] for i in range(3)) == right
    for row in rows:
        assert float(row["confidence"]) >= float(row["top2_prob"])


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_adapt_draws_a_contact_sheet(
    run_dir: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.png"
    argv = ["adapt", str(run_dir), "--support", str(new / "support"), "--query",
            str(new / "query"), "--out", str(tmp_path / "p.csv"),
            "--contact-sheet", str(sheet)]  # fmt: skip
    assert main(argv) == 0
    assert f"wrote {sheet} (9 of 9 images)" in capsys.readouterr().out
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_plot_extra_is_one_line_before_any_work(
    run_dir: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    no_matplotlib: None,
) -> None:  # fmt: skip
    out = tmp_path / "p.csv"
    argv = ["adapt", str(run_dir), "--support", str(new / "support"), "--query",
            str(new / "query"), "--out", str(out), "--contact-sheet", "s.png"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "fastmeta adapt: a contact sheet needs matplotlib: pip install 'fastmeta[plot]'\n"
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with one accepts it")
@pytest.mark.parametrize("command", ["adapt", "export"])
def test_device_cuda_without_cuda_is_one_line(
    command: str, run_dir: Path, new: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, str(run_dir), "--support", str(new / "support"), "--device", "cuda"]
    argv += ["--query", str(new / "query")] if command == "adapt" else []
    assert main(argv) == 2
    assert "no CUDA device is available" in capsys.readouterr().err


@pytest.mark.protonet_export
def test_export_takes_a_device_and_matches_adapt(
    run_dir: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.pt2"
    argv = ["export", str(run_dir), "--support", str(new / "support"), "--out", str(path),
            "--device", "auto"]  # fmt: skip
    assert main(argv) == 0
    assert f"wrote {path}: 3 classes" in capsys.readouterr().out
    program = torch.export.load(path).module()
    image = torch.rand(1, 1, SIZE, SIZE)
    assert program(image).shape == (1, 3)


def test_a_torch_whose_export_refuses_a_free_batch_is_one_line(
    run_dir: Path, new: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """torch 2.4 refuses ``Dim("batch", min=1)`` for a ProtoNets classifier: its own many-line
    message becomes one line naming the fix, and no file is written."""
    import fastmeta.predict.export as export

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Constraints violated (batch)! For more information, run with ...")

    monkeypatch.setattr(export.torch.export, "export", refuse)
    path = tmp_path / "c.pt2"
    argv = ["export", str(run_dir), "--support", str(new / "support"), "--out", str(path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "export it with a newer torch (2.13 is tested)" in err[0]
    assert not path.exists()


def test_top_k_must_be_positive(run_dir: Path, new: Path, capsys: pytest.CaptureFixture[str]):
    argv = ["adapt", str(run_dir), "--support", str(new / "support"), "--query",
            str(new / "query"), "--top-k", "0"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == "fastmeta adapt: --top-k must be at least 1; got 0\n"
