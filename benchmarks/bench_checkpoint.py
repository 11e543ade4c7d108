"""Memory and speed of checkpointed inner steps against kept activations, by number of steps.

What is timed: fastmeta's second-order MAML meta-step (forward, inner loop, meta-gradient) of
the Conv4 with BatchNorm on Omniglot-shaped 5-way 1-shot tasks with 15 queries per class, tasks
one at a time with a backward per task, with ``checkpoint_inner_steps`` off and on. Before
timing, the two gradients are compared. Rounds of the two alternate; the table gives the median
round's tasks/s and the peak memory of one meta-step (see :mod:`benchmarks.measure`).

    python -m benchmarks.bench_checkpoint --steps 5 10 20 --threads 1
"""

from __future__ import annotations

import torch

from benchmarks.measure import (
    alternating_rounds,
    machine,
    median,
    parse,
    peak_memory_mb,
    synchronizer,
    timing_arguments,
)
from benchmarks.report import publish
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
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--queries", type=int, default=15)
    args = parse(parser)
    started = machine(torch.device("cpu"))
    rows = []
    for steps in args.steps:
        rows += measure(steps, args.meta_batch, args.queries, args.rounds, args.seconds)
    columns = [
        ("inner steps", "steps", "d"), ("activations", "activations", ""),
        ("tasks/s", "tasks_per_s", ".1f"), ("peak MB", "peak_memory_mb", ".0f"),
        ("gradient difference", "relative_gradient_difference", ".1e"),
    ]  # fmt: skip
    after = machine(torch.device("cpu"))["load_average"]
    publish(rows, columns, started, after, args.json)


if __name__ == "__main__":
    main()
