"""Prototypical Networks meta-step throughput: fastmeta's strategies against learn2learn's
``PrototypicalClassifier`` and a plain per-task loop, on the same encoder and meta-batch.

Each method computes the gradient of the mean query loss of a meta-batch (squared Euclidean
distance to class means of the support embeddings), checked against a float64 reference
before it is timed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.measure import alternating_rounds, median, peak_memory_mb, synchronizer
from benchmarks.peers import LEARN2LEARN, Method
from benchmarks.report import Row, add_ratios
from benchmarks.verify import TOLERANCE, checked, protonet_reference_gradient
from benchmarks.workloads import conv4, synthetic_batch
from fastmeta.algorithms.protonet import PrototypicalNetwork
from fastmeta.tasks import TaskBatch

Step = Callable[[TaskBatch], None]


def fastmeta_protonet(strategy: str, chunk_size: int | None) -> Callable[[nn.Module], Step]:
    def build(encoder: nn.Module) -> Step:
        protonet = PrototypicalNetwork(encoder, strategy=strategy)

        def step(batch: TaskBatch) -> None:
            encoder.zero_grad(set_to_none=True)
            protonet.accumulate_gradients(batch, chunk_size)

        return step

    return build


def plain_loop(encoder: nn.Module) -> Step:
    """One encoder call per task on support and query together, prototypes by masked means."""

    def step(batch: TaskBatch) -> None:
        encoder.zero_grad(set_to_none=True)
        shots, ways = batch.support_x.shape[1], int(batch.support_y.max()) + 1
        for t in range(batch.num_tasks):
            embedded = encoder(torch.cat([batch.support_x[t], batch.query_x[t]]))
            support, query = embedded[:shots], embedded[shots:]
            one_hot = F.one_hot(batch.support_y[t], ways).to(support.dtype)
            prototypes = one_hot.T @ support / one_hot.sum(0, keepdim=True).T
            logits = -(query.unsqueeze(1) - prototypes).pow(2).sum(-1)
            loss = F.cross_entropy(logits, batch.query_y[t]) / batch.num_tasks
            loss.backward()

    return step


def learn2learn_protonet(encoder: nn.Module) -> Step:
    """learn2learn's ``PrototypicalClassifier`` on one encoder call per task."""
    from learn2learn.nn import PrototypicalClassifier

    def step(batch: TaskBatch) -> None:
        encoder.zero_grad(set_to_none=True)
        shots = batch.support_x.shape[1]
        for t in range(batch.num_tasks):
            embedded = encoder(torch.cat([batch.support_x[t], batch.query_x[t]]))
            classifier = PrototypicalClassifier(embedded[:shots], batch.support_y[t])
            logits = classifier(embedded[shots:])
            (F.cross_entropy(logits, batch.query_y[t]) / batch.num_tasks).backward()

    return step


METHODS: tuple[Method, ...] = (
    Method("fastmeta auto", fastmeta_protonet("auto", None)),
    Method("fastmeta loop", fastmeta_protonet("loop", None)),
    Method("fastmeta vmap", fastmeta_protonet("vmap", None)),
    Method("fastmeta vmap, chunks of 8", fastmeta_protonet("vmap", 8)),
    Method("plain loop", plain_loop),
    Method(LEARN2LEARN, learn2learn_protonet, "learn2learn"),
)


def run(
    meta_batches: tuple[int, ...], queries: int, device: torch.device, rounds: int, seconds: float
) -> list[Row]:
    """5-way 1-shot episodes, Conv4 encoder with max-pooling (the ProtoNets network)."""
    rows: list[Row] = []
    for meta_batch in meta_batches:
        workload = f"ProtoNets, 5-way 1-shot, meta-batch {meta_batch}, {queries}q, synthetic"
        print(f"protonet: {workload} ...", flush=True)
        batch = synthetic_batch(meta_batch, queries).to(device)
        reference = protonet_reference_gradient(_encoder(device), batch)
        steps = {}
        for method in METHODS:
            if not method.available(device):
                continue
            encoder = _encoder(device)
            step = method.build(encoder)
            ok, error = checked(lambda: step(batch), encoder, reference, TOLERANCE)  # noqa: B023
            row = Row("protonet", workload, method.name, "ok" if ok else "refused")
            if isinstance(error, str):
                row.status, row.note = "failed", error
            else:
                row.gradient_error = error
                if not ok:
                    row.note = f"gradient differs from the reference by {error:.1e} (relative)"
            rows.append(row)
            if ok:
                steps[method.name] = lambda step=step, batch=batch: step(batch)
        timings = alternating_rounds(steps, meta_batch, rounds, seconds, synchronizer(device))
        for row in rows:
            if row.workload == workload and row.method in steps:
                row.rounds = timings[row.method]
                row.tasks_per_s = median(row.rounds)
                row.peak_memory_mb = peak_memory_mb(steps[row.method], device)
    add_ratios(rows, LEARN2LEARN)
    return rows


def _encoder(device: torch.device) -> nn.Module:
    return conv4(out_features=None, downsample="maxpool").to(device)
