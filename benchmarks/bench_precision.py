"""Numerical effect and speed of the training precisions (``train.precision``) on MAML.

For each workload, fastmeta's second-order MAML meta-gradient (``strategy="auto"``) is computed
in each precision and compared with a float64 per-task reference (relative error of the whole
gradient vector, and its cosine with the reference); then rounds of the precisions alternate
and the median round's tasks/s is reported. ``tf32`` is measured on CUDA only (on a CPU it
is float32).

    python -m benchmarks.bench_precision --threads 1
"""

from __future__ import annotations

import torch

from benchmarks.measure import (
    alternating_rounds,
    machine,
    median,
    parse,
    synchronizer,
    timing_arguments,
)
from benchmarks.report import publish
from benchmarks.verify import maml_reference_gradient
from benchmarks.workloads import MamlConfig, batch_for, conv4
from fastmeta.algorithms import MAML
from fastmeta.train.precision import precision

WORKLOADS = (
    MamlConfig(first_order=False, steps=1, meta_batch=32, queries=1),
    MamlConfig(first_order=False, steps=1, meta_batch=4, queries=15),
    MamlConfig(first_order=False, steps=5, meta_batch=32, queries=1),
)


def measure(
    config: MamlConfig, device: torch.device, rounds: int, seconds: float
) -> list[dict[str, object]]:
    """One row per precision for ``config``'s workload."""
    batch = batch_for(config, device)
    assert batch is not None
    reference = maml_reference_gradient(
        conv4().to(device), batch, config.inner_lr, config.steps, config.first_order
    )
    expected = torch.cat([g.flatten() for g in reference.values()])
    modes = ("float32", "tf32", "bf16") if device.type == "cuda" else ("float32", "bf16")
    steps, errors, cosines = {}, {}, {}
    for mode in modes:
        model = conv4().to(device)
        maml = MAML(model, lr=config.inner_lr, steps=config.steps, first_order=config.first_order)

        def step(maml: MAML = maml, model: torch.nn.Module = model, mode: str = mode) -> None:
            model.zero_grad(set_to_none=True)
            with precision(mode, device):
                maml.accumulate_gradients(batch, None)

        step()
        gradient = torch.cat([p.grad.flatten() for p in model.parameters()]).double()
        errors[mode] = float((gradient - expected).norm() / expected.norm())
        cosines[mode] = float(torch.nn.functional.cosine_similarity(gradient, expected, dim=0))
        steps[mode] = step
    timings = alternating_rounds(steps, batch.num_tasks, rounds, seconds, synchronizer(device))
    return [
        {
            "workload": config.label,
            "precision": mode,
            "tasks_per_s": median(timings[mode]),
            "relative_gradient_error": errors[mode],
            "cosine_to_reference": cosines[mode],
        }
        for mode in modes
    ]


def main() -> None:
    parser = timing_arguments(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parse(parser)
    device = torch.device(args.device)
    started = machine(device)
    rows = []
    for config in WORKLOADS:
        rows += measure(config, device, args.rounds, args.seconds)
    columns = [
        ("workload", "workload", ""), ("precision", "precision", ""),
        ("tasks/s", "tasks_per_s", ".1f"),
        ("meta-gradient error vs float64", "relative_gradient_error", ".1e"),
        ("cosine", "cosine_to_reference", ".4f"),
    ]  # fmt: skip
    publish(rows, columns, started, machine(device)["load_average"], args.json)


if __name__ == "__main__":
    main()
