"""The real mini-ImageNet in $FASTMETA_DATA/miniimagenet (all 60,000 images): the counts of the
Ravi & Larochelle split, disjoint splits, the cached load, and a short ProtoNets run through the
command line that learns (well above chance) and resumes exactly.

The images decode once into the machine's cache ($FASTMETA_CACHE, else ~/.cache/fastmeta;
about a minute on one core); later runs of these tests read it in well under a second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fastmeta.cli import main
from fastmeta.config import apply_overrides
from fastmeta.datasets.miniimagenet import load_miniimagenet, read_split_csv
from fastmeta.presets import load_config
from fastmeta.run.checkpoint import list_checkpoints
from fastmeta.train.trainer import Trainer
from tests.interrupt import Interrupted, interrupt_at

from .conftest import SPLITS, shared_root

CLASSES = {"train": 64, "val": 16, "test": 20}


@pytest.fixture(scope="module")
def mini() -> SimpleNamespace:
    root = shared_root("miniimagenet")
    if not (root / "images").is_dir():
        pytest.skip(f"{root}/images (the real mini-ImageNet images) is needed")
    stores = {split: load_miniimagenet(split, root) for split in SPLITS}  # decodes if cold
    cpu = wall = float("inf")
    threads = torch.get_num_threads()
    # One thread: on a shared machine torch's parallel argsort (in ImageStore) spins for
    # 0.2-0.6 s of CPU waiting for its second thread; alone it takes milliseconds.
    torch.set_num_threads(1)
    try:
        for _ in range(3):  # the best of three: the machine is shared
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            for split in SPLITS:
                load_miniimagenet(split, root)
            cpu = min(cpu, time.process_time() - start_cpu)
            wall = min(wall, time.perf_counter() - start_wall)
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(root=root, stores=stores, cpu=cpu, wall=wall)


def test_ravi_split_has_64_16_20_classes_of_600_images(mini: SimpleNamespace) -> None:
    for split, store in mini.stores.items():
        assert store.num_classes == CLASSES[split], split
        assert store.class_sizes.tolist() == [600] * CLASSES[split], split
        assert store.images.dtype == torch.uint8 and store.image_shape == (3, 84, 84)
        assert store.images.shape[0] == 600 * CLASSES[split]


def test_splits_share_no_class_and_no_file(mini: SimpleNamespace) -> None:
    names = {split: set(store.class_names) for split, store in mini.stores.items()}
    files = {
        split: {f for f, _ in read_split_csv(mini.root / "splits" / f"{split}.csv")}
        for split in SPLITS
    }
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not names[a] & names[b], (a, b)
        assert not files[a] & files[b], (a, b)
    assert sum(len(f) for f in files.values()) == 60_000


def test_cached_load_of_all_three_splits_takes_under_a_second(mini: SimpleNamespace) -> None:
    """Process time (the machine is shared: waiting for a core is not the loader's cost); the
    wall time is bounded loosely. Most of it is one stat per image, which notices a changed
    file."""
    assert mini.cpu < 1.0, f"cached load took {mini.cpu:.2f} s of CPU ({mini.wall:.2f} s wall)"
    assert mini.wall < 10.0


# ProtoNets on a narrow Conv4 (16 filters) at 84x84, 5-way 5-shot with 5 queries per class, 60
# steps. Measured (2026-12-02, load 3.6-8 on 2 cores, one thread): 38.82 +- 1.14 % on 200 test
# episodes (chance 20 %); 34 % is four CIs under it. The whole test takes minutes here.
SHORT = ["sampler.ways=5", "sampler.shots=5", "sampler.test_shots=5", "sampler.queries=5",
         "model.hidden=16", "train.iterations=60", "train.val_every=0",
         "train.checkpoint_every=20", "train.log_every=10", "eval.episodes=200",
         "eval.batch_size=20", "seed=3"]  # fmt: skip
ABOVE = 0.34


@pytest.mark.slow
def test_short_cli_run_learns_and_resumes_exactly(
    mini: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = [f"data.root={mini.root}"]
    straight = tmp_path / "straight"
    argv = ["train", "protonet-miniimagenet-5w1s", *data, *SHORT, "--out", str(straight)]
    assert main([*argv, "--no-progress"]) == 0
    report = json.loads((straight / "report.json").read_text())
    assert report["dataset"] == "miniimagenet" and (report["ways"], report["shots"]) == (5, 5)
    assert report["accuracy"]["mean"] > ABOVE, report["accuracy"]

    config = apply_overrides(load_config("protonet-miniimagenet-5w1s"), [*data, *SHORT])
    interrupted = Trainer.create(config, tmp_path / "resumed", progress_bar=False)
    interrupt_at(interrupted, 33)
    with pytest.raises(Interrupted):
        interrupted.fit()
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "resumed" / "report.json").read_text())
    assert again["accuracy"] == report["accuracy"]
    assert list_checkpoints(straight)[-1].name == list_checkpoints(tmp_path / "resumed")[-1].name
    a, b = (
        Trainer.resume(run, progress_bar=False).algorithm.state_dict()
        for run in (straight, tmp_path / "resumed")
    )
    for name in a:
        assert torch.equal(a[name], b[name]), name
