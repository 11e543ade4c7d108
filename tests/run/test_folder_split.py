"""A training run's folder split: every problem reported, split kept in split.yaml and reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fastmeta.cli import main
from fastmeta.datasets import SplitError
from fastmeta.datasets.patterns import write_pattern_folder
from fastmeta.run.folder_split import SPLIT_FILE, FolderSplit, plan_folder_split

PATTERNS = [f"pattern{i:02d}" for i in range(8)]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """8 good classes of 6 mixed images, a corrupt file, a text file, a loose file, an empty
    class folder and a class of 2 images."""
    root = write_pattern_folder(tmp_path / "messy", classes=8, images=6, size=12)
    good = (root / "pattern00" / "img000.png").read_bytes()
    (root / "pattern00" / "broken.png").write_bytes(good[: len(good) // 2])
    (root / "pattern01" / "notes.txt").write_text("taken in May")
    (root / "labels.csv").write_text("not a class")
    (root / "empty").mkdir()
    (root / "rare").mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(root / "pattern02" / "img000.png", root / "rare" / name)
    return root


def plan(root: Path, **changes) -> FolderSplit:
    settings = dict(
        image_size=10, channels=None, fractions=(0.5, 0.25, 0.25), seed=0, min_images=4,
        normalize=True, min_classes={"train": 2, "val": 2, "test": 2},
    )  # fmt: skip
    return plan_folder_split(root, **{**settings, **changes})


def test_report_names_every_problem_and_split_covers_the_usable_classes(messy: Path) -> None:
    split = plan(messy)
    report = split.report()
    for line in (
        "skipped labels.csv: not inside a class folder",
        "skipped pattern01/notes.txt: not an image (format not recognised)",
        "skipped pattern00/broken.png: corrupt image",
        "class folder empty/ has no usable image",
        "class rare left out: 2 images, fewer than the 4 an episode takes from a class",
        "8 classes, 48 images used (resized to 10x10 by centre crop, colour)",
    ):
        assert line in report
    parts = [set(split.classes[s]) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [4, 2, 2]
    assert set().union(*parts) == set(PATTERNS) and sum(map(len, parts)) == 8
    assert split.small_classes == {"rare": 2} and split.images_per_class["pattern01"] == 6
    assert split.images_per_class["pattern00"] == 6  # the corrupt seventh file is not counted


def test_normalisation_is_the_training_images_channel_statistics(messy: Path) -> None:
    split = plan(messy)
    pixels = []  # decoded here with Pillow directly, as the reference
    for name in split.classes["train"]:
        for path in sorted((messy / name).iterdir()):
            if path.name != "broken.png":
                image = Image.open(path).convert("RGB").resize((10, 10), Image.Resampling.LANCZOS)
                pixels.append(np.asarray(image, dtype=np.float64) / 255)
    stacked = np.stack(pixels).reshape(-1, 3)
    np.testing.assert_allclose(split.mean, stacked.mean(0), atol=1e-9)
    np.testing.assert_allclose(split.std, stacked.std(0), atol=1e-9)
    assert plan(messy, normalize=False).normalizer() is None


def test_split_file_round_trip_and_grey_detection(messy: Path, tmp_path: Path) -> None:
    split = plan(messy)
    path = tmp_path / SPLIT_FILE
    path.write_text(split.to_yaml())
    assert FolderSplit.from_file(path) == split
    grey = write_pattern_folder(tmp_path / "grey", classes=8, images=4, size=12)
    for file in grey.rglob("*.png"):
        Image.open(file).convert("L").save(file)
    for file in [f for f in grey.rglob("*") if f.is_file() and f.suffix != ".png"]:
        file.unlink()
    assert plan(grey, min_images=1).mode == "L"
    assert split.mode == "RGB" and plan(messy, channels=1).mode == "L"


def test_impossible_requests_say_what_to_change(messy: Path) -> None:
    with pytest.raises(SplitError, match=r"val split .* gets 2 classes but its episodes need 3"):
        plan(messy, min_classes={"train": 3, "val": 3, "test": 3})
    with pytest.raises(SplitError, match=r"no class of .* has the 9 images an episode takes"):
        plan(messy, min_images=9)


TINY = ["data.image_size=16", "data.fractions=[0.5,0.25,0.25]", "model.hidden=8",
        "sampler.ways=2", "sampler.shots=1", "sampler.queries=2", "train.iterations=4",
        "train.val_every=2", "train.val_episodes=4", "eval.episodes=4"]  # fmt: skip


def test_cli_trains_on_the_folder_and_reuses_its_split(messy: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(messy), *TINY, "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skipped pattern00/broken.png: corrupt image" in out
    assert "class rare left out: 2 images" in out and "accuracy:" in out
    saved = FolderSplit.from_file(run / SPLIT_FILE)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["split_file"] == str((run / SPLIT_FILE).resolve())
    assert saved.classes == plan(messy, normalize=True).classes
    write_pattern_folder(messy / "later", classes=1, images=6, size=12)  # a class added later
    (messy / "later" / "pattern00").rename(messy / "newcomer")
    assert main(["eval", str(run)]) == 0  # reads split.yaml: same classes, no error
    assert FolderSplit.from_file(run / SPLIT_FILE) == saved
    assert main(["train", "--data", str(messy), *TINY, "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert FolderSplit.from_file(run / SPLIT_FILE) == saved
