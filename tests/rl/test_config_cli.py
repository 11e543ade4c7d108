"""Presets, configuration checks with their one-line errors, the ``fastmeta rl`` commands,
and the lazy imports: the core package and the pure-torch parts load without gymnasium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastmeta.config import apply_overrides
from fastmeta.rl.adaptation import sampling
from fastmeta.rl.build import build_algorithm, build_streams, check_config
from fastmeta.rl.cli import is_rl_preset, is_rl_run, main
from fastmeta.rl.config import read_rl_config
from fastmeta.rl.environments import ENVIRONMENTS, env_spec
from fastmeta.rl.navigation import Navigation2D
from fastmeta.rl.policies import GaussianMLPPolicy
from fastmeta.rl.presets import load_config, preset_names
from fastmeta.rl.sharding import Share

REQUIRED = {
    "maml-trpo-navigation",
    "maml-trpo-halfcheetah-vel",
    "promp-halfcheetah-dir",
    "rl2-navigation",
}


def test_every_preset_reads_and_passes_the_checks():
    names = set(preset_names())
    assert names >= REQUIRED
    for name in names:
        config = load_config(name)
        check_config(config)
        assert config.env.name in ENVIRONMENTS
        assert is_rl_preset(name)
    assert not is_rl_preset("sine-maml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["algorithm.nme=1"], "unknown setting 'algorithm.nme'"),
        (["algorithm.name=maml"], "choose one of maml-trpo, cavia"),
        (["sampling.meta_batch=0"], "must be at least 1"),
        (["env.name=cartpole"], "choose one of navigation"),
        (["algorithm.name=cavia"], "set policy.context_dim"),
        (["algorithm.name=maml-ppo"], "set algorithm.first_order=true"),
        (["policy.context_dim=4"], "leave it 0"),
    ],
)
def test_bad_settings_get_one_line_that_says_what_to_change(overrides, message):
    with pytest.raises(ValueError, match=message) as error:
        check_config(apply_overrides(load_config("maml-trpo-navigation"), overrides))
    assert "\n" not in str(error.value)


def test_a_missing_extra_is_named(monkeypatch):
    spec = env_spec("halfcheetah-vel")
    monkeypatch.setattr(spec.__class__, "missing", lambda self: ["mujoco"])
    with pytest.raises(ImportError, match=r"pip install 'fastmeta\[rl\]'"):
        spec.check_installed()


def test_yaml_round_trip_and_kind_marker(tmp_path):
    from fastmeta.config import dump_yaml

    config = load_config("promp-navigation")
    assert read_rl_config(dump_yaml(config)) == config
    path = tmp_path / "mine.yaml"
    path.write_text(dump_yaml(config))
    assert is_rl_preset(str(path))
    path.write_text("name: supervised\n")
    assert not is_rl_preset(str(path))


def test_train_eval_and_plot_commands_on_a_tiny_run(tmp_path, capsys):
    run = tmp_path / "run"
    tiny = [
        "env.horizon=6",
        "policy.hidden=[4]",
        "sampling.meta_batch=2",
        "sampling.episodes=2",
        "train.iterations=2",
        "train.val_every=1",
        "train.val_tasks=2",
        "eval.tasks=2",
        "eval.episodes=2",
        "eval.batch_tasks=2",
    ]
    assert main(["train", "maml-trpo-navigation", *tiny, "--out", str(run), "--no-progress"]) == 0
    assert is_rl_run(run) and not is_rl_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    assert sorted(report["returns"]) == ["0", "1", "2", "3"]
    assert report["iterations"] == 2
    phases = [
        json.loads(line)["phase"] for line in (run / "metrics.jsonl").read_text().splitlines()
    ]
    assert phases == ["train", "val", "train", "val"]
    assert main(["eval", str(run), "eval.steps=1", "--name", "short"]) == 0
    assert sorted(json.loads((run / "short.json").read_text())["returns"]) == ["0", "1"]
    assert main(["eval", str(run), "algorithm.inner_lr=1"]) == 2
    assert "cannot change after training" in capsys.readouterr().err
    assert main(["train", "maml-trpo-navigation", "--out", str(run)]) == 2  # holds a run
    pytest.importorskip("matplotlib")
    assert main(["plot", str(run)]) == 0
    assert (run / "adaptation.png").is_file() and (run / "training.png").is_file()


def test_the_core_package_and_the_torch_parts_import_no_simulator():
    code = (
        "import sys, fastmeta, fastmeta.algorithms\n"
        "assert 'fastmeta.rl' not in sys.modules, 'the core package imported fastmeta.rl'\n"
        "import fastmeta.rl.cli, fastmeta.rl.trainer, fastmeta.rl.navigation\n"
        "simulators = [m for m in sys.modules if m.split('.')[0] in "
        "('gymnasium', 'mujoco', 'metaworld')]\n"
        "assert not simulators, simulators[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


@pytest.mark.parametrize("preset", ["cavia-navigation", "maml-ppo-navigation"])
def test_navigation_presets_take_a_meta_step(preset, float64):
    config = apply_overrides(
        load_config(preset),
        # the Fisher on every task: on a quarter of 4 tasks, TRPO's quadratic model of the KL may
        # be so far off that all 15 backtracks fail and the weights stay (correctly)
        [
            "policy.hidden=[16]",
            "env.horizon=20",
            "sampling.meta_batch=4",
            "sampling.episodes=10",
            "algorithm.fisher_fraction=1",
        ],
    )
    env = Navigation2D(horizon=20)
    policy = GaussianMLPPolicy(2, 2, (16,), context_dim=config.policy.context_dim)
    algorithm = build_algorithm(config, policy, env)
    tasks = build_streams(config).train.batch(0)
    adapted = algorithm.inner.adapt(
        policy,
        policy.task_params(4),  # type: ignore[union-attr]
        sampling(algorithm.sampler, policy, tasks, 0),
    )  # type: ignore[union-attr]
    changed = {n for n, p in adapted.final.items() if not torch.equal(p, adapted.params[0][n])}
    assert changed == (
        {"context"} if preset.startswith("cavia") else set(dict(policy.named_parameters()))
    )
    before = [p.detach().clone() for p in policy.parameters()]
    algorithm.meta_step(tasks, 0, Share.of(4))
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_the_fastmeta_command_hands_rl_presets_and_runs_over(tmp_path, capsys):
    from fastmeta.cli import main as fastmeta_main

    run = tmp_path / "run"
    tiny = [
        "env.horizon=6",
        "policy.hidden=[4]",
        "sampling.meta_batch=2",
        "sampling.episodes=2",
        "train.iterations=1",
        "eval.tasks=2",
        "eval.episodes=2",
        "eval.batch_tasks=2",
    ]
    argv = ["train", "maml-trpo-navigation", *tiny, "--out", str(run), "--no-progress"]
    assert fastmeta_main(argv) == 0 and is_rl_run(run)
    assert fastmeta_main(["eval", str(run), "--name", "again"]) == 0
    assert (run / "again.json").is_file()
    # the meta-RL trainer's own rule (the supervised one would extend the run): handed over
    assert fastmeta_main(["train", "--resume", str(run), "train.iterations=2"]) == 2
    assert "continues a run as configured" in capsys.readouterr().err
    assert fastmeta_main(["rl", "presets"]) == 0
    assert "maml-trpo-navigation" in capsys.readouterr().out
