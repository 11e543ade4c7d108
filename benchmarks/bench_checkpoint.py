"""Memory and speed of checkpointed inner steps against kept activations, by number of steps.

What is timed: fastmeta's second-order MAML meta-step (forward, inner loop, meta-gradient) of
the Conv4 with BatchNorm on Omniglot-shaped 5-way 1-shot tasks with 15 queries per class, tasks
one at a time with a backward per task, with ``checkpoint_inner_steps`` off and on. Before
timing, the two gradients are compared. Rounds of the two alternate; the table gives the median
round's tasks/s and the peak memory of one meta-step (see :mod:`benchmarks.measure`).

    python -m benchmarks.bench_checkpoint --steps 5 10 20 --threads 1
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.measure import (
    alternating_rounds,
    machine,
    median,
    peak_memory_mb,
    synchronizer,
)
from benchmarks.workloads import conv4, synthetic_batch
from fastmeta.algorithms import MAML


def measure(
    steps: int, meta_batch: int, queries: int, rounds: int, seconds: float
) -> list[dict[str, object]]:
    """One row per setting (kept, checkpointed) for ``steps`` inner steps."""
    device = torch.device("cpu")
    batch = synthetic_batch(meta_batch, queries)
    calls, gradients = {}, {}
    for checkpointed in (False, True):
        name = "checkpointed" if checkpointed else "kept"
        model = conv4()
        maml = MAML(
            model, lr=0.4, steps=steps, strategy="loop", checkpoint_inner_steps=checkpointed
        )

        def step(maml: MAML = maml, model: torch.nn.Module = model) -> None:
            model.zero_grad(set_to_none=True)
            maml.accumulate_gradients(batch, 1)

        step()
        calls[name] = step
        gradients[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    difference = float(
        (gradients["checkpointed"] - gradients["kept"]).norm() / gradients["kept"].norm()
    )
    timings = alternating_rounds(calls, meta_batch, rounds, seconds, synchronizer(device))
    return [
        {
            "steps": steps,
            "activations": name,
            "tasks_per_s": median(timings[name]),
            "peak_memory_mb": peak_memory_mb(calls[name], device),
            "relative_gradient_difference": difference,
        }
        for name in calls
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = machine(torch.device("cpu"))
    rows = []
    for steps in args.steps:
        rows += measure(steps, args.meta_batch, args.queries, args.rounds, args.seconds)
    print("| inner steps | activations | tasks/s | peak MB | gradient difference |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['steps']} | {row['activations']} | {row['tasks_per_s']:.1f} | "
            f"{row['peak_memory_mb']:.0f} | {row['relative_gradient_difference']:.1e} |"
        )
    print(f"{started}; load average after {machine(torch.device('cpu'))['load_average']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": started, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
