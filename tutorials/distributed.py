"""Tutorial 7: distributed meta-training with torchrun (here 2 processes on a CPU, over gloo).

Every process computes the meta-gradient of its share of each meta-batch; one all-reduce sums the
shares, each weighted by its fraction of the batch, so every process holds the gradient of the
whole batch's mean loss and takes the same optimizer step. This script does that by hand once
and checks it against the whole batch on one process, then lets fastmeta's trainer do it for a
whole run (it also splits validation and test episodes and gathers their scores; rank 0 alone
writes the run directory).

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 tutorials/distributed.py
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 tutorials/distributed.py --tiny

The same run from the command line: ``torchrun --standalone --nproc_per_node=2 -m fastmeta
train sine-maml device=cpu``. Several machines, resuming on another number of processes and
timeouts: docs/DISTRIBUTED.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from fastmeta.algorithms import MAML
from fastmeta.datasets.sine import SineTasks
from fastmeta.models import MLP
from fastmeta.presets import load_config
from fastmeta.run.settings import apply_run_overrides
from fastmeta.train.distributed import Distributed, distributed_session
from fastmeta.train.report import format_report
from fastmeta.train.trainer import Trainer


def shared_meta_gradient(d: Distributed, tasks: int = 8) -> float:
    """One meta-gradient computed in shares and all-reduced, against the whole batch here."""
    torch.manual_seed(0)  # the same initial weights on every process
    maml = MAML(MLP(1, [40, 40], 1, init="maml"), lr=0.01, steps=1)
    batch = SineTasks(shots=10, queries=10, seed=0, batch_size=tasks).batch(0)

    # this process's contiguous share of the tasks (the first ones take one more if uneven)
    base, extra = divmod(tasks, d.world_size)
    start = d.rank * base + min(d.rank, extra)
    count = base + (1 if d.rank < extra else 0)
    maml(batch.slice(start, start + count)).loss.backward()  # ∇ of the mean over MY tasks
    for p in maml.parameters():
        assert p.grad is not None
        p.grad *= count / tasks  # weight: my share of the batch
        dist.all_reduce(p.grad)  # sum over processes = ∇ of the mean over ALL tasks

    whole = torch.autograd.grad(maml(batch).loss, list(maml.parameters()))
    gap = max(
        (p.grad - g).abs().max().item() for p, g in zip(maml.parameters(), whole, strict=True)
    )
    assert gap < 1e-6, f"rank {d.rank}: shared meta-gradient differs by {gap:.1e}"
    return gap


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="Distributed meta-training with torchrun")
    parser.add_argument("--out", type=Path, default=Path("runs/tutorial-distributed"))
    parser.add_argument("--tiny", action="store_true", help="4 steps, 4 test tasks")
    args = parser.parse_args(argv)

    # Joins the processes torchrun started (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    # gloo for CPU tensors, NCCL for CUDA ones. Run without torchrun, it is one process.
    with distributed_session(timeout_s=120) as d:
        gap = shared_meta_gradient(d)
        print(
            f"rank {d.rank} of {d.world_size}: all-reduced shares = the whole batch's "
            f"meta-gradient (max difference {gap:.1e})"
        )

        # The trainer does the same for every step of a run. The preset sine-maml, shortened:
        changes = ["device=cpu", "train.iterations=2000", "train.val_every=500"]
        if args.tiny:
            changes = [
                "device=cpu",
                "train.iterations=4",
                "train.val_every=2",
                "train.val_episodes=4",
                "eval.episodes=4",
                "eval.batch_size=2",
                "model.layers=[8]",
                "sampler.meta_batch=4",
            ]
        config = apply_run_overrides(load_config("sine-maml"), changes)
        trainer = Trainer.create(config, args.out, progress_bar=False)  # on every process
        report = trainer.fit()  # each step: my share, one all-reduce, the same update
        if d.is_main:  # only rank 0 wrote config.yaml, metrics, checkpoints and the report
            print(format_report(report))
            print(f"run directory: {args.out} (tested on {report['processes']} processes)")
    return {"gap": gap, "processes": float(d.world_size)}


if __name__ == "__main__":
    main()
