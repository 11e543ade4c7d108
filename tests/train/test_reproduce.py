"""``fastmeta reproduce``: a family's presets, finished runs reused, missing ones listed."""

from __future__ import annotations

import pytest

from fastmeta.cli import main
from fastmeta.train.reproduce import family_presets, reproduce
from fastmeta.train.trainer import Trainer
from tests.train.test_trainer import small_config


def test_a_family_is_every_method_s_preset_of_that_benchmark_and_shape():
    names = family_presets("omniglot-5w1s")
    assert {"maml-omniglot-5w1s", "imaml-omniglot-5w1s", "reptile-omniglot-5w1s"} <= set(names)
    assert all(n.endswith("-omniglot-5w1s") for n in names)  # not protonet-omniglot-5w1s-val
    assert "metabaseline-miniimagenet-5w5s" in family_presets("miniimagenet-5w5s")
    with pytest.raises(ValueError, match=r"families: cifarfs-5w1s, .*omniglot-5w1s"):
        family_presets("omniglot")


def test_existing_tabulates_finished_runs_and_lists_the_others(tmp_path):
    report = Trainer.create(
        small_config("train.iterations=4", "train.val_every=0"), tmp_path / "sine-maml",
        progress_bar=False,
    ).fit()  # fmt: skip
    table = reproduce(["sine-maml", "maml-omniglot-5w1s"], tmp_path, existing=True)
    rows = table.splitlines()
    assert rows[0].startswith("| preset | protocol | ours (95% CI) | published |")
    assert (
        rows[2].startswith(f"| {report['name']} |") and f"{report['loss']['mean']:.3f}" in rows[2]
    )
    assert rows[-1] == f"not run (no report in {tmp_path}): maml-omniglot-5w1s"
    assert not (tmp_path / "maml-omniglot-5w1s").exists()  # nothing was trained


def test_presets_or_one_family(capsys):
    assert main(["reproduce"]) == 2
    assert main(["reproduce", "sine-maml", "--family", "omniglot-5w1s"]) == 2
    assert "name the presets to reproduce, or one --family" in capsys.readouterr().err
