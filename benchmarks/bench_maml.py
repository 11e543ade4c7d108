"""MAML meta-step throughput: fastmeta's strategies against learn2learn, higher, TorchOpt and a
plain torch.func loop, on the same weights and the same meta-batch.

Every method first computes one meta-gradient, which must match a float64 reference (see
:mod:`benchmarks.verify`); a method that disagrees is reported as refused and not timed. Then
rounds of every accepted method alternate; the row gives the median round's tasks/s and the
peak memory of one meta-step.
"""

from __future__ import annotations

import itertools

import torch

from benchmarks.measure import alternating_rounds, median, peak_memory_mb, synchronizer
from benchmarks.peers import LEARN2LEARN, METHODS, Method
from benchmarks.report import Row, add_ratios
from benchmarks.verify import TOLERANCE, checked, maml_reference_gradient
from benchmarks.workloads import MamlConfig, batch_for, conv4

QUICK = (
    MamlConfig(first_order=False, steps=1, meta_batch=4, queries=15),
    MamlConfig(first_order=False, steps=1, meta_batch=32, queries=1),
    MamlConfig(first_order=True, steps=5, meta_batch=4, queries=15),
)


def full_configs(with_omniglot: bool) -> list[MamlConfig]:
    """Both orders x 1 and 5 inner steps x meta-batch 4/32/128 x 15 and 1 queries per class,
    plus real Omniglot batches (both orders, 1 step, meta-batch 32, 15 queries) when asked."""
    configs = [
        MamlConfig(first_order=order, steps=steps, meta_batch=meta_batch, queries=queries)
        for order, steps, meta_batch, queries in itertools.product(
            (False, True), (1, 5), (4, 32, 128), (15, 1)
        )
    ]
    if with_omniglot:
        configs += [
            MamlConfig(first_order=order, steps=1, meta_batch=32, queries=15, data="omniglot")
            for order in (False, True)
        ]
    return configs


def run_config(
    config: MamlConfig,
    methods: tuple[Method, ...],
    device: torch.device,
    rounds: int,
    seconds: float,
) -> list[Row]:
    """Verify, time and measure every available method on ``config``'s workload."""
    batch = batch_for(config, device)
    if batch is None:
        return []
    reference = maml_reference_gradient(
        conv4().to(device), batch, config.inner_lr, config.steps, config.first_order
    )
    rows, steps = [], {}
    for method in methods:
        if not method.available(device):
            continue
        model = conv4().to(device)
        step = method.build(model, config)
        accepted, error = checked(lambda: step(batch), model, reference, TOLERANCE)  # noqa: B023
        row = Row("maml", config.label, method.name, "ok" if accepted else "refused")
        if isinstance(error, str):
            row.status, row.note = "failed", error
        else:
            row.gradient_error = error
            if not accepted:
                row.note = f"meta-gradient differs from the reference by {error:.1e} (relative)"
        rows.append(row)
        if accepted:
            steps[method.name] = lambda step=step: step(batch)
    timings = alternating_rounds(steps, batch.num_tasks, rounds, seconds, synchronizer(device))
    for row in rows:
        if row.method in steps:
            row.rounds = timings[row.method]
            row.tasks_per_s = median(row.rounds)
            row.peak_memory_mb = peak_memory_mb(steps[row.method], device)
    add_ratios(rows, LEARN2LEARN)
    return rows


def run(
    configs: list[MamlConfig] | tuple[MamlConfig, ...],
    device: torch.device,
    rounds: int,
    seconds: float,
    methods: tuple[Method, ...] = METHODS,
    progress: bool = True,
) -> list[Row]:
    """All ``configs`` one after the other."""
    rows: list[Row] = []
    for config in configs:
        if progress:
            print(f"maml: {config.label} ...", flush=True)
        rows += run_config(config, methods, device, rounds, seconds)
    return rows
