"""A configuration is checked against the dataset and algorithm registries, once, with errors that
name the key and the choices; files of fastmeta 0.1 still load."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from fastmeta.config import apply_overrides, to_dict
from fastmeta.presets import load_config, preset_names
from fastmeta.run.directory import RunDirectory, fingerprint
from fastmeta.run.settings import apply_run_overrides, data_options, image_size, resolve_config
from fastmeta.run_config import RunConfig, read_run_config


def resolved(*overrides: str) -> RunConfig:
    return resolve_config(apply_overrides(RunConfig(), list(overrides)))


def test_every_preset_resolves() -> None:
    for name in preset_names():
        config = resolve_config(load_config(name))
        assert config.data.dataset and config.algorithm.name


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.dataset=imagenet"], "data.dataset='imagenet' is not valid; choose one of omniglot"),
        (["data.splt=maml"], "unknown setting 'data.splt' for data.dataset=omniglot; valid"),
        (["data.dataset=cub", "data.split=maml"], "valid settings of data: dataset, root"),
        (["data.split=random"], "data.split='random' is not valid; choose one of vinyals, maml"),
        (["data.dataset=sine", "data.image_size=28"], "data.image_size applies to image datasets"),
        (["data.image_size=0"], "must be a positive number of pixels"),
        (["algorithm.name=mamal"], "choose one of maml, metasgd"),
        (["algorithm.options.distance=cosine"], "algorithm 'maml' takes no algorithm.options"),
        (["algorithm.name=protonet", "algorithm.options.distance=l1"], "choose one of"),
        (["sampler.test_ways=20"], "maml's head has one output per training way"),
        (["algorithm.name=reptile", "algorithm.adapt=[head]"], "leave algorithm.adapt unset"),
    ],
)
def test_mistakes_are_named_with_the_choices(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolved(*overrides)


def test_a_setting_a_method_ignores_is_warned_about() -> None:
    with pytest.warns(UserWarning, match="algorithm.inner_lr has no effect on protonet"):
        resolved("algorithm.name=protonet", "algorithm.inner_lr=0.1")


def test_names_are_canonical_and_option_values_typed() -> None:
    config = resolved("data.dataset=Mini-ImageNet", "data.source=csv")
    assert config.data.dataset == "miniimagenet" and image_size(config.data) == 84
    folder = resolved("data.dataset=folder", "data.fractions=[1, 0, 0]")
    assert folder.data.options == {"fractions": [1.0, 0.0, 0.0]}
    assert data_options(folder.data).fractions == (1.0, 0.0, 0.0)
    assert data_options(folder.data).split_seed == 0  # a default, not written into the config
    proto = resolved("algorithm.name=protonet", "algorithm.options.scale=2")
    assert proto.algorithm.options == {"scale": 2.0}


def test_switching_dataset_or_algorithm_starts_from_its_defaults() -> None:
    maml = load_config("maml-omniglot-5w1s")  # data.split=maml, image_size 28, inner scale 5
    mini = apply_run_overrides(maml, ["data.dataset=miniimagenet"])
    assert mini.data.options == {} and mini.data.image_size is None
    resolve_config(mini)  # nothing of Omniglot's is left to refuse
    kept = apply_run_overrides(maml, ["data.image_size=32", "data.dataset=folder"])
    assert kept.data.image_size == 32
    proto = apply_run_overrides(maml, ["algorithm.name=protonet"])
    assert proto.algorithm.inner_loss_scale == 1.0 and proto.algorithm.options == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_config(proto)
    anil = apply_run_overrides(maml, ["algorithm.name=anil"])
    assert anil.algorithm.inner_loss_scale == 5  # ANIL reads it: kept


def test_the_moved_distance_setting_still_works_as_an_override() -> None:
    config = apply_run_overrides(
        load_config("protonet-omniglot-5w1s"), ["algorithm.distance=cosine"]
    )
    assert resolve_config(config).algorithm.options == {"distance": "cosine"}


# The whole config.yaml fastmeta 0.1 wrote for `fastmeta train sine-maml` (every field, each
# dataset's and method's settings included whether they applied or not).
SINE_0_1 = """
name: sine-maml
reference: null
seed: 0
device: auto
algorithm: {name: maml, inner_lr: 0.01, inner_steps: 1, test_inner_steps: 10, first_order: false,
  inner_loss_scale: 1.0, adapt: null, distance: squared_euclidean, strategy: auto,
  chunk_size: null, checkpoint_inner_steps: false, options: {}}
model: {name: mlp, hidden: 64, channels: [64, 160, 320, 640], downsample: stride, layers: [8],
  init: maml, drop_rate: 0.0, drop_block_size: 5}
data: {dataset: sine, root: null, split: vinyals, image_size: 28, train_classes: train,
  channels: null, normalize: auto, fractions: [0.64, 0.16, 0.2], split_seed: 0, split_file: null}
sampler: {ways: 5, shots: 10, queries: 10, meta_batch: 2, test_ways: null, test_shots: 5,
  test_queries: 100}
optimizer: {name: adam, lr: 0.001, weight_decay: 0.0, momentum: 0.0, schedule: constant,
  step_size: 2000, gamma: 0.5, grad_clip: null}
train: {iterations: 4, time_limit_minutes: null, precision: float32, val_every: 2,
  val_episodes: 4, early_stop_patience: null, checkpoint_every: 2, keep_checkpoints: 3,
  log_every: 50}
eval: {episodes: 4, seed: 1000003, batch_size: 100, inner_steps: [1, 5, 10]}
"""


def test_a_run_directory_of_fastmeta_0_1_resumes_and_tests(tmp_path: Path) -> None:
    from fastmeta.train.trainer import Trainer

    legacy = yaml.safe_load(SINE_0_1)
    config = read_run_config(SINE_0_1)
    assert config.data.image_size is None and config.data.options == {}
    proto = dict(legacy, algorithm={**legacy["algorithm"], "name": "protonet"})
    assert read_run_config(yaml.safe_dump(proto)).algorithm.options == {
        "distance": "squared_euclidean"
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(SINE_0_1)
    trained = Trainer(config, tmp_path / "scratch", progress_bar=False)
    expected = fingerprint(trained.algorithm, config)
    state = trained.state()
    state["progress"]["step"] = 2
    RunDirectory(run).save_checkpoint(2, state, 3, {**expected, "config": legacy})
    resumed = Trainer.resume(run, progress_bar=False)
    assert resumed.progress.step == 2
    for name, tensor in resumed.algorithm.state_dict().items():
        torch.testing.assert_close(tensor, trained.algorithm.state_dict()[name])
    assert resumed.fit()["iterations"] == 4
    assert to_dict(RunDirectory(run).read_config()) == to_dict(config)


def test_checking_a_configuration_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from fastmeta.presets import load_config, preset_names\n"
        "from fastmeta.run.settings import resolve_config\n"
        "for name in preset_names(): resolve_config(load_config(name))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
