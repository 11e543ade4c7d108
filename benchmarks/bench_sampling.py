"""Episode sampling throughput: fastmeta against learn2learn on the same in-memory data.

Omniglot-sized synthetic data (4112 classes x 20 uint8 images of 1x28x28) and 5-way 1-shot
15-query meta-batches of 32, each delivered as the same TaskBatch of float images in [0, 1]
(learn2learn's and the familiar API's tasks are split per class, stacked and converted). Rounds
of every method alternate, so background load hits them alike; the table gives the median and
best round and the speed-up over learn2learn, from the medians and as the median of adjacent
round pairs. learn2learn is skipped (with a note) when it cannot be imported; run it from the
peers environment (see PEERS.md):

    .venv-peers/bin/python benchmarks/bench_sampling.py --json sampling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.data import TensorDataset

import fastmeta.data as fm
from fastmeta.data import ImageStore, TaskSet
from fastmeta.tasks import TaskBatch

WAYS, SHOTS, QUERIES, META_BATCH = 5, 1, 15, 32
CLASSES, PER_CLASS, SIDE = 4112, 20, 28
LEARN2LEARN = "learn2learn 0.2.0 TaskDataset"
FAMILIAR_TRANSFORMS = ("NWays", "KShots", "LoadData", "RemapLabels", "ConsecutiveLabels")


def synthetic_images(classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes x 20`` random uint8 images and their labels, sorted by class."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (classes * PER_CLASS, 1, SIDE, SIDE), generator=generator)
    return images.to(torch.uint8), torch.arange(classes).repeat_interleave(PER_CLASS)


def batch_from_tasks(tasks: list[tuple[torch.Tensor, torch.Tensor]]) -> TaskBatch:
    """Stack per-task ``(X, y)`` with consecutive labels into a float TaskBatch, split per class."""
    xs = torch.stack([x for x, _ in tasks]).view(len(tasks), WAYS, SHOTS + QUERIES, 1, SIDE, SIDE)
    ys = torch.stack([y for _, y in tasks]).view(len(tasks), WAYS, SHOTS + QUERIES)
    xs = xs.float().div_(255.0)
    return TaskBatch(
        xs[:, :, :SHOTS].reshape(len(tasks), WAYS * SHOTS, 1, SIDE, SIDE),
        ys[:, :, :SHOTS].reshape(len(tasks), -1),
        xs[:, :, SHOTS:].reshape(len(tasks), WAYS * QUERIES, 1, SIDE, SIDE),
        ys[:, :, SHOTS:].reshape(len(tasks), -1),
    )


def familiar_sampler(
    api: Any, images: torch.Tensor, labels: torch.Tensor
) -> Callable[[], TaskBatch]:
    """A meta-batch maker over a TaskDataset API (learn2learn's or fastmeta.data's)."""
    dataset = api.MetaDataset(TensorDataset(images, labels))
    transforms = [
        api.NWays(dataset, WAYS),
        api.KShots(dataset, SHOTS + QUERIES),
        api.LoadData(dataset),
        api.RemapLabels(dataset),
        api.ConsecutiveLabels(dataset),
    ]
    tasks = api.TaskDataset(dataset, task_transforms=transforms, num_tasks=-1)
    return lambda: batch_from_tasks([tasks.sample() for _ in range(META_BATCH)])


def taskset_sampler(store: ImageStore) -> Callable[[], TaskBatch]:
    """A meta-batch maker over fastmeta's TaskSet, walking the seeded stream."""
    tasks = TaskSet.from_store(store, WAYS, SHOTS, QUERIES, META_BATCH, seed=0)
    position = iter(range(sys.maxsize))
    return lambda: tasks.batch(next(position))


def check(batch: TaskBatch) -> None:
    """Every method must deliver the same kind of batch."""
    assert batch.support_x.shape == (META_BATCH, WAYS * SHOTS, 1, SIDE, SIDE)
    assert batch.query_x.shape == (META_BATCH, WAYS * QUERIES, 1, SIDE, SIDE)
    assert batch.support_x.dtype == torch.float32 and float(batch.query_x.max()) <= 1.0


def time_round(make: Callable[[], TaskBatch], seconds: float, sync: Callable[[], None]) -> float:
    """Tasks per second over whole meta-batches for about ``seconds``."""
    batches, start = 0, time.perf_counter()
    while True:
        make()
        batches += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return batches * META_BATCH / elapsed


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def measure(
    rounds: int, seconds: float, device: torch.device
) -> tuple[list[dict[str, Any]], list[str]]:
    """Alternating rounds of every sampler; one result row per method, and notes."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    images, labels = synthetic_images(CLASSES)
    names = [f"class{i:04d}" for i in range(CLASSES)]
    store = ImageStore(images, labels, names).to(device)
    chars = CLASSES // 4
    rotated = ImageStore(images[: chars * PER_CLASS], labels[: chars * PER_CLASS], names[:chars])
    rotated = rotated.with_rotations().to(device)
    methods = {
        "fastmeta TaskSet": taskset_sampler(store),
        "fastmeta TaskSet, 1028 x 4 rotations": taskset_sampler(rotated),
        "fastmeta TaskDataset (familiar API)": familiar_sampler(fm, images, labels),
    }
    notes = []
    try:
        import learn2learn.data as l2l_data
    except ImportError as error:
        notes.append(f"learn2learn not importable ({error}); its row is skipped")
    else:
        api = SimpleNamespace(
            MetaDataset=l2l_data.MetaDataset,
            TaskDataset=l2l_data.TaskDataset,
            **{name: getattr(l2l_data.transforms, name) for name in FAMILIAR_TRANSFORMS},
        )
        methods[LEARN2LEARN] = familiar_sampler(api, images, labels)
    for make in methods.values():
        check(make())

    results: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, make in methods.items():
            results[name].append(time_round(make, seconds, sync))

    reference = results.get(LEARN2LEARN)
    rows = []
    for name, values in results.items():
        row: dict[str, Any] = {
            "method": name,
            "median": statistics.median(values),
            "best": max(values),
        }
        if reference:
            row["speedup_median"] = row["median"] / statistics.median(reference)
            paired = [mine / theirs for mine, theirs in zip(values, reference, strict=True)]
            row["speedup_paired_median"] = statistics.median(paired)
        rows.append({**row, "rounds": values})
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per method")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's own default)"
    )
    parser.add_argument("--device", default="cpu", help="device of fastmeta's store")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()
    rows, notes = measure(args.rounds, args.seconds, device)
    load_after = os.getloadavg()
    reference = "speedup_median" in rows[0]

    header = ["median tasks/s", "best tasks/s", "x l2l (medians)", "x l2l (paired)"]
    print(f"{'method':<38}" + "".join(f"{h:>17}" for h in header))
    for row in rows:
        cells = [f"{row['median']:,.0f}", f"{row['best']:,.0f}"]
        for key in ("speedup_median", "speedup_paired_median"):
            cells.append(f"{row[key]:.1f}" if key in row else "-")
        print(f"{row['method']:<38}" + "".join(f"{c:>17}" for c in cells))
    if reference:
        print("paired: median over rounds of (this round / the adjacent learn2learn round)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    for note in notes:
        print("note:", note)

    if args.json:
        report = {
            "command": " ".join([sys.executable, *sys.argv]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": f"{cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()})",
            "threads": torch.get_num_threads(),
            "device": str(device),
            "task": {"ways": WAYS, "shots": SHOTS, "queries": QUERIES, "meta_batch": META_BATCH},
            "data": {"classes": CLASSES, "images_per_class": PER_CLASS, "shape": [1, SIDE, SIDE]},
            "load_average_before_after": [load_before, load_after],
            "results": rows,
            "notes": notes,
        }
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
