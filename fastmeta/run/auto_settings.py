"""Settings for ``fastmeta train --data FOLDER`` chosen by the folder and the machine.

With no preset named, the run is sized to finish in a stated time (``train.time_limit_minutes``
when given, else :data:`BUDGET_MINUTES`): the episode shape follows the class count and the
images per class, the image size the device and the images' own size, and the number of
meta-steps a measurement of a few meta-steps and test episodes of the chosen configuration on
random images (the network, the algorithm and the optimizer as the run will build them). What
was chosen and the estimate are printed before training; any key the user gives is kept, and
the estimate is made with it. A tenth of the budget, at least :data:`OVERHEAD_SECONDS`, and the
time spent measuring are kept for what is not a meta-step or an episode (start-up, the class
split, checkpoints, pictures); the first decode of a folder comes on top.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastmeta.datasets.folder import FRACTIONS
from fastmeta.run.build import build_algorithm, build_model, build_optimizer, resolve_device
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch

BUDGET_MINUTES = 10.0
OVERHEAD_SECONDS = 45.0  # start-up, the class split, checkpoints, pictures (measured: ~50 s here)
IMAGE_SIZES = {"cpu": (64, 48, 32), "cuda": (84, 64, 48)}  # tried in turn while too slow
MIN_STEPS = 300  # fewer meta-steps than this in the budget: try a smaller image size
MAX_STEPS = 10_000
VALIDATIONS = 10
VAL_EPISODES = 100
TEST_EPISODES = 600
SAMPLED_IMAGES = 64


@dataclass(frozen=True)
class FolderSurvey:
    """A folder counted without decoding it: files per class folder and the typical shorter
    side (pixels, the median of a sample's headers; ``None`` when none could be read)."""

    root: Path
    files_per_class: dict[str, int]
    side: int | None

    @property
    def typical_class(self) -> int:
        """The files of a small class: the 20th percentile over classes."""
        counts = list(self.files_per_class.values()) or [0]
        return int(np.percentile(counts, 20, method="lower"))


def survey_folder(root: Path) -> FolderSurvey:
    """Count the files of each class folder of ``root`` and read a sample's image headers."""
    folder = root.expanduser().resolve()
    counts: dict[str, int] = {}
    files: list[Path] = []
    if folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name[0] != "."):
            found = [
                f for f in sub.rglob("*")
                if f.is_file() and not any(p[0] == "." for p in f.relative_to(sub).parts)
            ]  # fmt: skip
            counts[sub.name] = len(found)
            files += found
    sides = []
    for path in files[:: max(1, len(files) // SAMPLED_IMAGES)][:SAMPLED_IMAGES]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (OSError, SyntaxError, ValueError):
            continue  # not an image: reported when the folder is read
    return FolderSurvey(folder, counts, int(np.median(sides)) if sides else None)


def episode_settings(survey: FolderSurvey) -> dict[str, int]:
    """Ways, shots and queries the folder can give every split (classes split by the default
    fractions; a class below the 20th percentile of files may be left out)."""
    classes = len(survey.files_per_class)
    train = round(FRACTIONS[0] * classes)
    val = round(FRACTIONS[1] * classes)
    ways = max(2, min(5, train, val, classes - train - val))
    per_class = survey.typical_class
    shots = 5 if per_class >= 10 else max(1, per_class // 3)
    queries = max(1, min(10, per_class - shots))
    return {"sampler.ways": ways, "sampler.shots": shots, "sampler.queries": queries}


@dataclass(frozen=True)
class Costs:
    """Seconds of one meta-step and of one test episode, measured."""

    step: float
    episode: float


def measure_costs(config: RunConfig, steps: int = 3) -> Costs:
    """Time ``steps`` meta-steps (after one warm-up) and as many test episodes of ``config`` on
    random images, on its device; the medians."""
    device = resolve_device(config.device)
    s = config.sampler
    size = config.data.image_size or 84
    shape = (3, size, size)
    torch.manual_seed(0)
    model = build_model(config, shape)
    algorithm = build_algorithm(config, model, train_classes=64, input_shape=shape).to(device)
    optimizer, _ = build_optimizer(config, algorithm)

    def batch(tasks: int, ways: int, shots: int, queries: int) -> TaskBatch:
        def labels(n: int) -> torch.Tensor:
            return torch.arange(ways, device=device).repeat_interleave(n).expand(tasks, -1)

        return TaskBatch(
            torch.rand(tasks, ways * shots, *shape, device=device), labels(shots),
            torch.rand(tasks, ways * queries, *shape, device=device), labels(queries),
            torch.randint(0, 64, (tasks, ways), device=device),
        )  # fmt: skip

    train = batch(s.meta_batch, s.ways, s.shots, s.queries)
    test = batch(1, *s.test_episodes())

    def step() -> None:
        algorithm.train()
        optimizer.zero_grad(set_to_none=True)
        algorithm.accumulate_gradients(train, config.algorithm.chunk_size)
        optimizer.step()

    def episode() -> None:
        algorithm.eval()
        algorithm.evaluate(test)

    return Costs(_median_seconds(step, steps, device), _median_seconds(episode, steps, device))


def _median_seconds(work: Callable[[], None], repeats: int, device: torch.device) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


@dataclass(frozen=True)
class AutoPlan:
    """The chosen ``key=value`` settings (the user's own keys left out) and the estimate."""

    overrides: list[str]
    survey: FolderSurvey
    device: str
    costs: Costs
    steps: int
    val_episodes: int
    validations: int
    test_episodes: int
    budget_minutes: float
    steps_chosen: bool

    @property
    def minutes(self) -> float:
        """The estimated length of the run: meta-steps, validations and the test."""
        evaluation = self.validations * self.val_episodes + self.test_episodes
        return (self.steps * self.costs.step + evaluation * self.costs.episode) / 60

    def summary(self) -> str:
        s = self.survey
        files = sum(s.files_per_class.values())
        side = f"about {s.side} px" if s.side else "sizes unknown"
        count = torch.get_num_threads()
        threads = f", {count} thread{'s' * (count > 1)}" if self.device == "cpu" else ""
        load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        return "\n".join([
            "settings chosen for this folder and machine (no preset named; any key=value "
            "overrides them):",
            f"  folder: {len(s.files_per_class)} classes, {files} files ({s.typical_class} a "
            f"class at the 20th percentile), images {side}; machine: {self.device}{threads}",
            "  " + " ".join(self.overrides),
            f"  estimate: {self.costs.step:.3f} s a meta-step, {self.costs.episode:.3f} s a "
            f"test episode (measured just now{load}): {self.steps} meta-steps + "
            f"{self.validations} validations of {self.val_episodes} episodes + "
            f"{self.test_episodes} test episodes = about {self.minutes:.1f} minutes"
            + (
                f", within {self.budget_minutes:g} (train.time_limit_minutes stops training in "
                "time)" if self.steps_chosen else " (train.iterations as given)"
            )
            + ", plus the first decode of the folder",
            *(
                [f"  only {self.steps} meta-steps fit in {self.budget_minutes:g} minutes here: "
                 "give more time with train.time_limit_minutes=..."]
                if self.steps_chosen and self.steps < MIN_STEPS else []
            ),
        ])  # fmt: skip


def plan_auto_settings(
    survey: FolderSurvey,
    configure: Callable[[list[str]], RunConfig],
    given: set[str],
) -> AutoPlan:
    """Choose the settings the user did not give (``given``: their keys) for ``survey``.

    ``configure(overrides)`` is the checked configuration with ``overrides`` applied before the
    user's own. The budget is the user's ``train.time_limit_minutes`` or :data:`BUDGET_MINUTES`.
    """
    chosen: dict[str, object] = {
        k: v for k, v in episode_settings(survey).items() if k not in given
    }
    base = configure([f"{k}={v}" for k, v in chosen.items()])
    budget = base.train.time_limit_minutes or BUDGET_MINUTES
    device = resolve_device(base.device).type
    sizes = list(IMAGE_SIZES[device])
    if survey.side is not None and survey.side < sizes[0]:  # small images: no upsampling
        own = max(16, survey.side // 4 * 4)
        sizes = [own, *(z for z in sizes if z < own)]
    if "data.image_size" in given:
        sizes = [base.data.image_size or 84]
    val_episodes = base.train.val_episodes if "train.val_episodes" in given else VAL_EPISODES
    test_episodes = base.eval.episodes if "eval.episodes" in given else TEST_EPISODES
    started = time.perf_counter()
    for size in sizes:
        if "data.image_size" not in given:
            chosen["data.image_size"] = size
        config = configure([f"{k}={v}" for k, v in chosen.items()])
        costs = measure_costs(config)
        if not {"train.val_episodes", "eval.episodes"} & given:  # at most a third evaluating
            fits = budget * 60 / 3 / costs.episode / (VALIDATIONS * VAL_EPISODES + TEST_EPISODES)
            val_episodes = max(20, min(VAL_EPISODES, int(VAL_EPISODES * fits)))
            test_episodes = max(100, min(TEST_EPISODES, int(TEST_EPISODES * fits)))
        evaluation = (VALIDATIONS * val_episodes + test_episodes) * costs.episode
        spent = round(time.perf_counter() - started)  # measuring is part of the run's time
        reserve = max(0.1 * budget * 60, OVERHEAD_SECONDS)
        train_seconds = budget * 60 - reserve - spent - evaluation
        steps = min(MAX_STEPS, max(1, math.floor(train_seconds / costs.step)))
        if steps >= MIN_STEPS:
            break
    defaults: dict[str, object] = {}
    if "train.iterations" in given:
        steps = config.train.iterations
    else:  # the time limit is the budget's share for training: a slower machine stops in time
        defaults["train.time_limit_minutes"] = round(max(train_seconds, 30) / 60, 2)
    every = config.train.val_every if "train.val_every" in given else max(1, steps // VALIDATIONS)
    defaults.update({
        "train.iterations": steps, "train.val_every": every, "train.checkpoint_every": every,
        "train.val_episodes": val_episodes, "eval.episodes": test_episodes,
        "train.log_every": max(1, min(50, every)), "optimizer.step_size": max(1, steps // 2),
    })  # fmt: skip
    chosen.update({k: v for k, v in defaults.items() if k not in given})
    return AutoPlan(
        [f"{k}={v}" for k, v in chosen.items()], survey, device, costs, steps, val_episodes,
        steps // every if every else 0, test_episodes, budget, "train.iterations" not in given,
    )  # fmt: skip
