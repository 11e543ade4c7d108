"""Every tutorial in tutorials/ runs end to end on tiny settings (``--tiny``), so none can go stale.

Each script checks its own central claim while it runs, and fails if it does not hold: fastmeta's
MAML meta-gradient equals the paper's equations written out (sine), the batched API equals the
``clone()``/``adapt()`` loop (Omniglot), one ``Reptile`` step equals the paper's update rule,
``PrototypicalNetwork``'s loss equals the paper's written out, an exported classifier gives the
trained one's probabilities, and two processes' all-reduced shares equal one process's
meta-gradient. The tests add what the output must contain. The scripts run in this process
(``main(argv)``, one thread, torch's random state restored afterwards), except the distributed
one, which torchrun starts as two real processes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.miniimagenet_subset import link_subset

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "tutorials"


def data_root(name: str) -> Path:
    """``$FASTMETA_DATA/<name>``, or skip: the Omniglot and mini-ImageNet tutorials read the
    real files."""
    base = os.environ.get("FASTMETA_DATA")
    if not base or not (Path(base) / name).is_dir():
        pytest.skip(f"set FASTMETA_DATA to a folder holding {name}/ (the real files)")
    return Path(base).expanduser().resolve() / name


@pytest.fixture
def tutorial() -> Iterator[Callable[..., dict[str, Any]]]:
    """Run ``tutorials/<name>.py``'s ``main(argv)`` here on one thread; returns its results."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():

            def run(name: str, *argv: str) -> dict[str, Any]:
                script = runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name=f"tutorial_{name}")
                results: dict[str, Any] = script["main"](list(argv))
                return results

            yield run
    finally:
        torch.set_num_threads(threads)


def test_every_tutorial_has_a_test_here() -> None:
    tested = {
        "maml_sine",
        "maml_omniglot_clone",
        "maml_omniglot_batched",
        "reptile",
        "protonet_miniimagenet",
        "own_folder",
        "distributed",
    }
    assert {p.stem for p in TUTORIALS.glob("*.py")} == tested


def test_maml_sine(tutorial: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]):
    results = tutorial("maml_sine", "--tiny")
    out = capsys.readouterr().out
    assert "meta-gradient: batched MAML = the equations written out" in out
    assert out.count("test MSE after") == 3 and "20 tasks" in out
    assert set(results) == {"mse_1_steps", "mse_5_steps", "mse_10_steps"}
    assert all(math.isfinite(v) and v > 0 for v in results.values())


def test_maml_omniglot_clone_adapt(
    tutorial: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_root("omniglot")
    results = tutorial("maml_omniglot_clone", "--tiny")
    out = capsys.readouterr().out
    assert "train: 4400 classes, test: 1692 classes" in out  # MAML's split, four rotations each
    assert "test accuracy over 10 episodes" in out
    assert 0.0 <= results["accuracy"] <= 1.0


def test_maml_omniglot_batched(
    tutorial: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    data_root("omniglot")
    results = tutorial("maml_omniglot_batched", "--tiny")
    out = capsys.readouterr().out
    assert "meta-gradient of 4 tasks: batched = clone()/adapt() loop" in out
    assert out.count("query accuracy") == 3 and "test accuracy over 10 episodes" in out
    assert 0.0 <= results["accuracy"] <= 1.0


def test_reptile(tutorial: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]):
    data_root("omniglot")
    results = tutorial("reptile", "--tiny")
    out = capsys.readouterr().out
    assert "the paper's Algorithm 2" in out and results["update_gap"] < 1e-5
    # ε annealed linearly from 1 towards 0 over the 3 steps
    assert "ε 1.000" in out and "ε 0.667" in out and "ε 0.333" in out
    assert 0.0 <= results["accuracy"] <= 1.0


@pytest.fixture
def small_miniimagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real mini-ImageNet layout (split csvs, images/) holding the first 6 real
    images of the first 5 classes of each split's real list (links to the real files), decoded
    into a fresh cache."""
    real = data_root("miniimagenet")
    if not (real / "images").is_dir():
        pytest.skip("the real mini-ImageNet images are needed (miniimagenet/images/)")
    root = link_subset(real, tmp_path / "miniimagenet", per_class=6)
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    return root


def test_protonet_miniimagenet(
    tutorial: Callable[..., dict[str, Any]],
    small_miniimagenet: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tutorial("protonet_miniimagenet", "--tiny", "--root", str(small_miniimagenet))
    out = capsys.readouterr().out
    assert "mini-ImageNet: 5 training classes, 5 test classes, 32x32 colour" in out
    assert "PrototypicalNetwork = J(φ) written out" in out
    assert "test: 5-way 1-shot over 10 episodes" in out
    assert 0.0 <= results["accuracy"] <= 1.0 and math.isfinite(results["loss"])


@pytest.mark.protonet_export
def test_own_folder(
    tutorial: Callable[..., dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_matplotlib: None,  # no pictures of the run: drawing them is a third of the time
) -> None:
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "work"
    results = tutorial("own_folder", "--tiny", "--work", str(work))
    out = capsys.readouterr().out
    assert "30 classes, 600 images used" in out and "nothing left out" in out
    assert "of 50 query images right" in out and results["export_gap"] < 1e-4
    assert 0.0 <= results["accuracy"] <= 1.0
    rows = list(csv.reader((work / "predictions.csv").open()))
    assert rows[0][:2] == ["file", "predicted_class"] and len(rows) == 51
    assert (work / "classifier.pt2").is_file() and (work / "run" / "split.yaml").is_file()


def test_distributed_two_processes(tmp_path: Path) -> None:
    """torchrun starts two real processes (gloo, CPU); both check the shared meta-gradient, the
    trainer runs on both, and only rank 0 writes the run directory's report."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(TUTORIALS / "distributed.py"),
        "--tiny",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for rank in (0, 1):
        assert f"rank {rank} of 2: all-reduced shares = the whole batch's" in done.stdout
    assert done.stdout.count("run directory:") == 1  # rank 0 alone reports
    report = json.loads((out / "report.json").read_text())
    assert report["processes"] == 2 and report["iterations"] == 4
