"""Scaling of distributed meta-training: tasks per second on 1, 2, ... processes.

Each measurement launches ``torchrun --standalone --nproc_per_node=K`` on this script's worker,
which builds the trainer of the MAML Omniglot 5-way 1-shot preset (meta-batch 32, second order)
and times ``Trainer.train_step`` (each process's share of the meta-batch, the all-reduce of the
meta-gradients and the optimizer step) after a warm-up. Every process runs with
``OMP_NUM_THREADS=1``, so K processes use K cores. Data: Omniglot-sized random images by default
(no download), or real Omniglot with ``--data omniglot`` (needs ``$FASTMETA_DATA``). Launches of
different K alternate over ``--rounds``, so background load hits them alike; the table gives
the median round.

    python benchmarks/bench_distributed.py --processes 1 2 --steps 10 --rounds 3

On a GPU machine with K GPUs, ``--device cuda`` puts one process on each GPU (NCCL).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastmeta.config import apply_overrides
from fastmeta.data import ImageStore, TaskSet
from fastmeta.presets import load_config
from fastmeta.run.build import Sources, resolve_device
from fastmeta.run_config import RunConfig
from fastmeta.train.distributed import distributed_session
from fastmeta.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
PRESET = "maml-omniglot-5w1s"
TRAIN_CLASSES, PER_CLASS = 4112, 20  # Omniglot training split with rotations, 20 drawings each


def synthetic_sources(config: RunConfig, device: torch.device) -> Sources:
    """Omniglot-sized random uint8 images as the train/val/test task sources of ``config``."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (TRAIN_CLASSES * PER_CLASS, 1, 28, 28), generator=generator)
    labels = torch.arange(TRAIN_CLASSES).repeat_interleave(PER_CLASS)
    store = ImageStore(images.to(torch.uint8), labels, [str(c) for c in range(TRAIN_CLASSES)]).to(
        device
    )
    s = config.sampler

    def tasks(seed: int, batch_size: int) -> TaskSet:
        return TaskSet.from_store(store, s.ways, s.shots, s.queries, batch_size, seed=seed)

    return Sources(
        train=tasks(config.seed, s.meta_batch),
        val=tasks(1, config.eval.batch_size),
        test=tasks(2, config.eval.batch_size),
        input_shape=store.image_shape,
        train_classes=store.num_classes,
    )


def worker(args: argparse.Namespace) -> None:
    """One process of a measurement; rank 0 prints one JSON line."""
    with distributed_session(timeout_s=600) as d, tempfile.TemporaryDirectory() as scratch:
        config = apply_overrides(load_config(PRESET), [f"device={args.device}", *args.set])
        device = d.device(resolve_device(config.device))
        sources = synthetic_sources(config, device) if args.data == "synthetic" else None
        trainer = Trainer(config, Path(scratch), progress_bar=False, sources=sources)
        for _ in range(args.warmup):
            trainer.train_step()
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()  # ends in a collective, so the processes finish together
        seconds = time.perf_counter() - started
        if d.is_main:
            tasks = args.steps * config.sampler.meta_batch
            result = {
                "processes": d.world_size,
                "tasks_per_s": tasks / seconds,
                "seconds_per_step": seconds / args.steps,
                "strategy": config.algorithm.strategy,
                "threads_per_process": torch.get_num_threads(),
            }
            print(json.dumps(result), flush=True)


def measure(processes: int, args: argparse.Namespace) -> dict:
    """Launch ``processes`` workers with torchrun; their rank 0's result."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", str(Path(__file__).resolve()), "--worker",
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--data", args.data,
        "--device", args.device, *(f"--set={item}" for item in args.set),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="timed meta-steps per launch")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="launches of each process count")
    parser.add_argument("--data", choices=("synthetic", "omniglot"), default="synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--set", action="append", default=["algorithm.strategy=auto"], metavar="KEY=VALUE",
        help="config override (default algorithm.strategy=auto: loop on CPU, vmap on GPU)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs: dict[int, list[dict]] = {k: [] for k in args.processes}
    for _ in range(args.rounds):
        for k in args.processes:
            runs[k].append(measure(k, args))
    load = os.getloadavg()
    print(
        f"{PRESET} ({args.data} data, {args.device}, {', '.join(args.set)}), "
        f"{args.steps} steps after {args.warmup} warm-up, median of {args.rounds} rounds; "
        f"{os.cpu_count()} CPUs ({platform.machine()}), torch {torch.__version__}, "
        f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    base = statistics.median(r["tasks_per_s"] for r in runs[args.processes[0]])
    print("\n| processes | tasks/s | s/step | speed-up | efficiency |")
    print("|---:|---:|---:|---:|---:|")
    summary = []
    for k, results in runs.items():
        rate = statistics.median(r["tasks_per_s"] for r in results)
        step = statistics.median(r["seconds_per_step"] for r in results)
        speedup = rate / base
        efficiency = speedup * args.processes[0] / k
        print(f"| {k} | {rate:.1f} | {step:.3f} | {speedup:.2f}x | {100 * efficiency:.0f} % |")
        summary.append({"processes": k, "tasks_per_s": rate, "rounds": results})
    if args.json:
        args.json.write_text(json.dumps({"load_average": load, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
