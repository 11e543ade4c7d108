"""The learn2learn-style example scripts: only their import line names fastmeta, and each one
trains briefly (``--tiny``) on real Omniglot or mini-ImageNet, FC100 on a copy of CIFAR-100's
real format (its images are not available here)."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch

from tests.datasets.test_cifar import make_root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "learn2learn"
SCRIPTS = ["maml_omniglot", "reptile_omniglot", "maml_miniimagenet", "protonet_miniimagenet",
           "anil_fc100"]  # fmt: skip
IMPORT = "import fastmeta.compat.learn2learn as l2l"


def run(name: str, root: Path) -> dict:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--tiny", "--root", str(root)])


def test_every_example_differs_from_learn2learn_s_form_by_its_import_line_only():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted([*SCRIPTS, "migration_speed"])
    for name in SCRIPTS:
        lines = (EXAMPLES / f"{name}.py").read_text().splitlines()
        assert [
            line for line in lines if "fastmeta" in line.lower().replace("$fastmeta_data", "")
        ] == [IMPORT]


def data_root() -> Path:
    base = os.environ.get("FASTMETA_DATA")
    if not base:
        pytest.skip("FASTMETA_DATA is not set; the examples read real Omniglot and mini-ImageNet")
    return Path(base)


def check_trained(result: dict) -> None:
    """A finite score, and a meta-gradient that reached every parameter of the network."""
    assert 0.0 <= result["test_accuracy"] <= 1.0
    for name, param in result["model"].named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in result["model"].parameters())


@pytest.mark.parametrize("name", SCRIPTS[:4])
def test_example_trains_on_real_data(name, capsys):
    result = run(name, data_root())
    check_trained(result)
    if "test_error" in result:
        assert math.isfinite(result["test_error"])
    printed = capsys.readouterr().out
    assert ("iteration 1" in printed or "epoch 1" in printed) and "test" in printed


def test_anil_fc100_trains_on_a_copy_of_cifar_100_s_format(tmp_path, monkeypatch):
    data_root()  # the fixture uses the real FC100 split lists
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    root = make_root(tmp_path / "data", "fc100").parent
    check_trained(run("anil_fc100", root))


def test_the_speed_measurement_compares_equal_meta_gradients():
    result = run("migration_speed", data_root())
    assert result["gradient_difference"] < 1e-5
    assert result["loop"] > 0 and result["batched"] > 0
