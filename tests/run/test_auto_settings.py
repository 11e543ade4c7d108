"""Settings for `fastmeta train --data FOLDER` chosen by the folder and the machine: the episode
shape from the class counts, the image size from the device and the images, the meta-steps
from measured costs and the time budget; the user's keys kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import fastmeta.run.auto_settings as auto
from fastmeta.cli import main
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.presets import load_config
from fastmeta.run.settings import apply_run_overrides, resolve_config
from fastmeta.run_config import RunConfig


def survey(classes: int, per_class: int, side: int | None = 200) -> auto.FolderSurvey:
    return auto.FolderSurvey(Path("x"), {f"c{i}": per_class for i in range(classes)}, side)


@pytest.mark.parametrize(
    ("classes", "per_class", "expected"),
    [(30, 20, (5, 5, 10)), (92, 80, (5, 5, 10)), (12, 12, (2, 5, 7)), (40, 8, (5, 2, 6)),
     (40, 3, (5, 1, 2))],
)  # fmt: skip
def test_episode_shape_fits_every_split(classes: int, per_class: int, expected: tuple) -> None:
    chosen = auto.episode_settings(survey(classes, per_class))
    assert (chosen["sampler.ways"], chosen["sampler.shots"], chosen["sampler.queries"]) == expected


def test_survey_counts_files_and_reads_image_sides(tmp_path: Path) -> None:
    folder = write_pattern_folder(tmp_path / "f", classes=3, images=5, size=20)
    (folder / "pattern01" / ".hidden.png").write_bytes(b"")
    (folder / "pattern01" / "notes.txt").write_text("not an image")
    found = auto.survey_folder(folder)
    assert found.files_per_class == {"pattern00": 5, "pattern01": 6, "pattern02": 5}
    assert 20 <= (found.side or 0) <= 40 and found.typical_class == 5


def configure_for(user: list[str]):
    def configure(chosen: list[str]) -> RunConfig:
        base = load_config("protonet-folder")
        return resolve_config(apply_run_overrides(base, [*chosen, *user]))

    return configure


def test_meta_steps_fill_the_budget_by_the_measured_costs(monkeypatch: pytest.MonkeyPatch):
    measured: list[int] = []

    def costs(config: RunConfig) -> auto.Costs:
        measured.append(config.data.image_size)
        return auto.Costs(step=0.2 if config.data.image_size == 64 else 0.05, episode=0.01)

    monkeypatch.setattr(auto, "measure_costs", costs)
    monkeypatch.setattr(auto, "resolve_device", lambda name: type("D", (), {"type": "cpu"}))
    plan = auto.plan_auto_settings(survey(30, 20), configure_for([]), set())
    chosen = dict(item.split("=") for item in plan.overrides)
    # 0.9 x 10 minutes less 10 validations of 100 and 600 test episodes at 0.01 s
    assert int(chosen["train.iterations"]) == int((540 - 16) / 0.2) == plan.steps
    assert measured == [64] and chosen["data.image_size"] == "64"
    assert chosen["train.val_every"] == str(plan.steps // 10) and plan.validations == 10
    assert 9 <= plan.minutes <= 10 and "about 9.0 minutes, within 10" in plan.summary()
    assert chosen["train.time_limit_minutes"] == str(round(524 / 60, 2))  # training's share
    # a twice longer budget given by the user: twice the meta-steps, the user's keys kept
    given = ["train.time_limit_minutes=20", "sampler.shots=1"]
    longer = auto.plan_auto_settings(
        survey(30, 20), configure_for(given), {k.split("=")[0] for k in given}
    )
    keys = dict(item.split("=") for item in longer.overrides)
    assert "sampler.shots" not in keys and "train.time_limit_minutes" not in keys
    assert int(keys["train.iterations"]) == int((1080 - 16) / 0.2)


def test_a_smaller_image_size_when_too_few_meta_steps_fit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        auto, "measure_costs",
        lambda c: auto.Costs(step={64: 5.0, 48: 1.0}.get(c.data.image_size, 0.5), episode=0.01),
    )  # fmt: skip
    monkeypatch.setattr(auto, "resolve_device", lambda name: type("D", (), {"type": "cpu"}))
    plan = auto.plan_auto_settings(survey(30, 20), configure_for([]), set())
    assert "data.image_size=48" in plan.overrides and plan.steps == 524
    small = auto.plan_auto_settings(survey(30, 20, side=30), configure_for([]), set())
    assert "data.image_size=28" in small.overrides  # images of 30 px are not upsampled


def test_measured_costs_are_positive_and_small_for_a_tiny_network() -> None:
    config = configure_for(["data.image_size=16", "model.hidden=8", "sampler.queries=2"])([])
    costs = auto.measure_costs(config, steps=1)
    assert 0 < costs.step < 30 and 0 < costs.episode < 30


def test_train_data_says_what_it_chose_and_the_user_keys_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    folder = write_pattern_folder(tmp_path / "shapes", classes=12, images=12, size=16)
    argv = ["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--no-progress",
            "data.image_size=16", "model.hidden=8", "train.iterations=2", "train.val_every=1",
            "train.val_episodes=2", "eval.episodes=2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "settings chosen for this folder and machine" in out and "estimate:" in out
    assert "sampler.ways=2 sampler.shots=5 sampler.queries=7" in out
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["sampler"]["queries"] == 7 and config["train"]["iterations"] == 2
    assert config["data"]["image_size"] == 16 and config["train"]["val_every"] == 1
    assert config["train"]["time_limit_minutes"] is None  # the iterations given are trained
    assert "(train.iterations as given)" in out
