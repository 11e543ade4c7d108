"""Parts (b) of ``benchmarks.gpu``: fastmeta's strategies and precisions against the peers.

Every row is one method (a strategy, a CUDA graph, torch.compile) in one precision on one
workload. Its meta-gradient is first compared with a float64 per-task reference
(:mod:`benchmarks.verify`). The float32 tolerance of a workload is :func:`fp32_tolerance`: 1e-2,
or three times the error of a plain float32 per-task loop where that is larger (deep networks);
a float32 method must be within it to be timed, a TF32 or bf16 one within
``REDUCED_TOLERANCE`` (and is fp32-equivalent only within the float32 tolerance). Then rounds of
the accepted methods alternate (:mod:`benchmarks.measure`).
Per row: tasks/s, the peak memory of one meta-step, on CUDA the peak allocated over the
method's whole life (capture and compilation included, the batch excluded) and the number of
host synchronisations in one meta-step (``torch.cuda.set_sync_debug_mode``). Peers run in
float32 with TF32 off. Rows are appended to a JSON-lines file after each workload.

    python -m benchmarks.gpu_timing --part timing --rows rows.jsonl --deadline-s 160
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from benchmarks.measure import alternating_rounds, median, peak_memory_mb, synchronizer
from benchmarks.peers import (
    LEARN2LEARN,
    MetaStep,
    Method,
    fastmeta_graphed_step,
    fastmeta_step,
    higher_step,
    learn2learn_step,
    torch_func_step,
    torchopt_step,
)
from benchmarks.report import Row
from benchmarks.verify import TOLERANCE, checked, maml_reference_gradient, relative_error
from benchmarks.workloads import SHOTS, WAYS, MamlConfig, batch_for
from fastmeta.algorithms import MAML
from fastmeta.models import Conv4
from fastmeta.models.resnet12 import ResNet12
from fastmeta.tasks import TaskBatch
from fastmeta.train.precision import precision

REDUCED_TOLERANCE = 0.6
"""TF32 / bf16 rows are timed within this relative error (bf16 was 0.39-0.46 from float64 on
a CPU, docs/PERFORMANCE.md); a first-order gradient is about 0.85 from the second-order one at
inner lr 0.4 (:mod:`benchmarks.verify`), so a wrong derivative still fails."""
MAX_TOLERANCE = 0.1
"""The float32 tolerance never exceeds this, far below a wrong derivative's distance."""
PARTS = ("timing", "compile")


@dataclass(frozen=True)
class Workload:
    """A network on a MAML meta-batch: ``network`` is conv4 or resnet12, ``width`` its hidden
    filters or its four block widths."""

    network: str
    channels: int
    side: int
    width: tuple[int, ...]
    config: MamlConfig
    downsample: str = "stride"
    blocks: int = 4

    @property
    def label(self) -> str:
        name = "Conv4" if self.network == "conv4" else "ResNet-12"
        widths = "-".join(map(str, self.width))
        if self.network == "conv4" and self.blocks != 4:
            widths += f", {self.blocks} block{'s' if self.blocks > 1 else ''}"
        return f"{name} ({widths}) {self.side}x{self.side}x{self.channels}, {self.config.label}"


def workloads(tiny: bool) -> list[Workload]:
    """The measured workloads in priority order (a time budget cuts the last ones).

    First the issue's: Omniglot shapes, 5-way 1-shot, 15 queries per class, Conv4 with
    BatchNorm, meta-batch 32, second order, 1 inner step; then 84x84 Conv4 (MAML's
    mini-ImageNet network) and ResNet-12 at meta-batch 4, the preset's one-query training shape
    and real Omniglot episodes. ``tiny``: the same rows with meta-batch 2, 2 queries, narrow
    nets (Conv4 of 1 block) and 16x16 images.
    """
    batch, queries, side, big_batch = (2, 2, 16, 2) if tiny else (32, 15, 84, 4)
    hidden, mini, blocks = ((8,), (8,), 1) if tiny else ((64,), (32,), 4)
    resnet = (8, 8, 8, 8) if tiny else (64, 160, 320, 640)
    second = MamlConfig(first_order=False, steps=1, meta_batch=batch, queries=queries)
    large = replace(second, meta_batch=big_batch)
    return [
        Workload("conv4", 1, 28, hidden, second, blocks=blocks),
        Workload("conv4", 3, side, mini, large, downsample="maxpool", blocks=blocks),
        Workload("resnet12", 3, side, resnet, large),
        Workload("conv4", 1, 28, hidden, replace(second, queries=1), blocks=blocks),
        Workload("conv4", 1, 28, hidden, replace(second, data="omniglot"), blocks=blocks),
    ]


def build_network(workload: Workload, seed: int = 0) -> nn.Module:
    """The workload's network with seeded weights (the same for every method)."""
    torch.manual_seed(seed)
    if workload.network == "resnet12":
        return ResNet12(workload.channels, WAYS, channels=workload.width)
    downsample = "maxpool" if workload.downsample == "maxpool" else "stride"
    return Conv4(workload.channels, WAYS, workload.width[0], downsample, workload.blocks)


def build_batch(workload: Workload, device: torch.device, seed: int = 0) -> TaskBatch | None:
    """The workload's meta-batch on ``device`` (None: real Omniglot asked for, not available)."""
    config = workload.config
    if workload.side == 28 and workload.channels == 1:
        return batch_for(config, device)
    generator = torch.Generator().manual_seed(seed)

    def part(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = (workload.channels, workload.side, workload.side)
        shape = (config.meta_batch, WAYS * per_class, *images)
        labels = torch.arange(WAYS).repeat_interleave(per_class).repeat(config.meta_batch, 1)
        return torch.rand(shape, generator=generator), labels

    return TaskBatch(*part(SHOTS), *part(config.queries)).to(device)


@dataclass(frozen=True)
class Variant:
    """A method measured in one precision (``float32`` means TF32 off on CUDA)."""

    method: Method
    precision: str = "float32"

    @property
    def name(self) -> str:
        suffix = {"float32": "", "tf32": ", TF32", "bf16": ", bf16"}[self.precision]
        return self.method.name + suffix


Builder = Callable[[nn.Module, MamlConfig], MetaStep]


def compiled_step(backend: str, mode: str | None = None) -> Builder:
    """fastmeta's MAML (vmap) with its forward, inner loop included, under ``torch.compile``
    and one backward over the batch."""

    def build(model: nn.Module, config: MamlConfig) -> MetaStep:
        maml = MAML(
            model, lr=config.inner_lr, steps=config.steps, first_order=config.first_order,
            strategy="vmap",
        )  # fmt: skip

        def loss(*tensors: torch.Tensor) -> torch.Tensor:
            return maml(TaskBatch(*tensors)).loss

        compiled = torch.compile(loss, backend=backend, mode=mode)

        def step(batch: TaskBatch) -> None:
            model.zero_grad(set_to_none=True)
            compiled(batch.support_x, batch.support_y, batch.query_x, batch.query_y).backward()

        return step

    return build


TINY_LATER = ("fastmeta auto", "fastmeta vmap, CUDA graph", LEARN2LEARN)
"""The dry run times every eager variant on its first workload and only these on the others (a
measured, a CUDA-only and a peer's row), and compiles in float32 on the first only, to stay
short on a CPU."""


def tiny_subset(part: str, index: int, chosen: list[Variant]) -> list[Variant]:
    """What the dry run measures of ``chosen`` on its workload number ``index``."""
    if part == "compile":
        return [v for v in chosen if v.precision == "float32"] if index == 0 else []
    return chosen if index == 0 else [v for v in chosen if v.name in TINY_LATER]


def variants(part: str, backend: str) -> list[Variant]:
    """What the part measures: ``timing`` every eager method, ``compile`` torch.compile."""
    if part == "compile":
        compiled = Method("fastmeta vmap, torch.compile", compiled_step(backend))
        graphs = compiled_step("inductor", "reduce-overhead")  # inductor's own CUDA graphs
        return [
            Variant(compiled),
            Variant(compiled, "tf32"),
            Variant(Method("fastmeta vmap, torch.compile reduce-overhead", graphs, cuda_only=True)),
        ]
    graphed = Method("fastmeta vmap, CUDA graph", fastmeta_graphed_step, cuda_only=True)
    auto = Method("fastmeta auto", fastmeta_step("auto", None))
    return [
        Variant(auto),
        Variant(Method("fastmeta vmap", fastmeta_step("vmap", None))),
        Variant(Method("fastmeta loop", fastmeta_step("loop", None))),
        Variant(Method("fastmeta vmap, chunks of 8", fastmeta_step("vmap", 8))),
        Variant(graphed),
        Variant(auto, "tf32"),
        Variant(graphed, "tf32"),
        Variant(auto, "bf16"),
        Variant(graphed, "bf16"),
        Variant(Method("torch.func loop", torch_func_step)),
        Variant(Method(LEARN2LEARN, learn2learn_step, "learn2learn")),
        Variant(Method("higher", higher_step, "higher")),
        Variant(Method("TorchOpt", torchopt_step, "torchopt")),
    ]


@dataclass
class GpuRow(Row):
    """A :class:`Row` with the precision, the gradient tolerance, the whole-life peak of GPU
    memory, host synchronisations per meta-step and the seconds the row took."""

    precision: str = "float32"
    tolerance: float | None = None
    fp32_equivalent: bool | None = None
    peak_allocated_mb: float | None = None
    host_syncs: int | None = None
    seconds: float | None = None
    config: dict[str, object] = field(default_factory=dict)


def _in_precision(step: MetaStep, mode: str) -> MetaStep:
    def run(batch: TaskBatch) -> None:
        with precision(mode, batch.device):
            step(batch)

    return run


def fp32_tolerance(
    workload: Workload, batch: TaskBatch, reference: dict[str, torch.Tensor], device: torch.device
) -> tuple[float, float]:
    """``(tolerance, loop error)``: the error of a plain float32 per-task autograd loop
    (:func:`benchmarks.peers.torch_func_step`) and the float32 tolerance it gives.

    Measured on a CPU (2026-12-01, one 5-way 1-shot task with 1 query per class, ResNet-12
    84x84 at full widths): fastmeta's float32 loop was 1.0e-2 (inner lr 0.4) and 2.2e-2 (lr
    0.01) from float64, a first-order gradient 1.0 and 0.9. Conv4 rows were 1e-6 to 2e-3 from
    it (docs/PERFORMANCE.md), so they keep 1e-2.
    """
    model = build_network(workload).to(device)
    with precision("float32", device):
        torch_func_step(model, workload.config)(batch)
    error = relative_error(model, reference)
    return min(max(TOLERANCE, 3 * error), MAX_TOLERANCE), error


def count_host_syncs(step: Callable[[], None], device: torch.device) -> int | None:
    """Synchronising CUDA calls one ``step()`` makes (None, and no call, off CUDA)."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def _free(device: torch.device) -> None:
    """Return the cached GPU memory of finished methods (nothing to do on a CPU)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def _skip_reason(variant: Variant, device: torch.device, deadline: float) -> str | None:
    method = variant.method
    if method.cuda_only and device.type != "cuda":
        return "skipped: needs CUDA"
    if not method.available(device):
        return f"not installed: {method.module}"
    if time.monotonic() > deadline:
        return "not run: time budget"
    return None


@dataclass
class Accepted:
    """A verified meta-step and the seconds one warm call of it took."""

    step: Callable[[], None]
    seconds: float


def _verify(
    row: GpuRow,
    variant: Variant,
    workload: Workload,
    batch: TaskBatch,
    reference: dict[str, torch.Tensor],
    device: torch.device,
) -> Accepted | None:
    """Build, check the gradient, then count host syncs and measure one warm step's memory."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if cuda else 0
    model = build_network(workload).to(device)
    fp32 = row.tolerance if row.tolerance is not None else TOLERANCE
    if variant.precision != "float32":
        row.tolerance = REDUCED_TOLERANCE
    try:
        step = _in_precision(variant.method.build(model, workload.config), variant.precision)
        accepted, error = checked(lambda: step(batch), model, reference, row.tolerance)
    except Exception as failure:  # a peer that cannot build on this workload is reported
        accepted, error = False, f"{type(failure).__name__}: {failure}"
    if isinstance(error, str):
        row.status, row.note = "failed", error[:300]
        return None
    row.gradient_error, row.fp32_equivalent = error, error <= fp32
    if not accepted:
        row.status = "refused"
        row.note = f"meta-gradient differs from the float64 reference by {error:.1e} (relative)"
        return None
    if cuda:  # the whole life so far: build, capture or compilation, the first step
        row.peak_allocated_mb = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        row.host_syncs = count_host_syncs(lambda: step(batch), device)
        started = time.perf_counter()
        row.peak_memory_mb = peak_memory_mb(lambda: step(batch), device)
        seconds = time.perf_counter() - started
    except Exception as failure:
        row.status, row.note = "failed", f"a later step: {type(failure).__name__}: {failure}"
        return None
    return Accepted(lambda: step(batch), seconds)


def measure(
    workload: Workload,
    chosen: list[Variant],
    device: torch.device,
    rounds: int,
    seconds: float,
    deadline: float,
) -> list[GpuRow]:
    """Verify, then time in alternating rounds, every variant on ``workload``."""
    config = {"workload": asdict(workload)}
    rows = [
        GpuRow("gpu", workload.label, v.name, "ok", precision=v.precision, config=config)
        for v in chosen
    ]
    batch = build_batch(workload, device)
    if batch is None:
        for row in rows:
            row.status, row.note = "not run", "no real Omniglot: give --data (or $FASTMETA_DATA)"
        return rows
    cfg = workload.config
    exact = maml_reference_gradient(
        build_network(workload).to(device), batch, cfg.inner_lr, cfg.steps, cfg.first_order
    )
    reference = {name: grad.cpu() for name, grad in exact.items()}
    del exact
    tolerance, loop_error = fp32_tolerance(workload, batch, reference, device)
    for row in rows:
        row.tolerance, row.config["float32_loop_error"] = tolerance, loop_error
    accepted: dict[str, Accepted] = {}
    for row, variant in zip(rows, chosen, strict=True):
        started = time.monotonic()
        reason = _skip_reason(variant, device, deadline)
        if reason is not None:
            row.status, row.note = reason.split(":")[0], reason
            continue
        print(f"  {variant.name}: checking the gradient ...", flush=True)
        _free(device)
        verified = _verify(row, variant, workload, batch, reference, device)
        if verified is not None:
            accepted[row.method] = verified
        row.seconds = time.monotonic() - started
    _time(rows, accepted, batch.num_tasks, device, rounds, seconds, deadline)
    return rows


def _time(
    rows: list[GpuRow],
    accepted: dict[str, Accepted],
    tasks: int,
    device: torch.device,
    rounds: int,
    seconds: float,
    deadline: float,
) -> None:
    """Alternating rounds of the accepted steps, as many as fit before ``deadline`` (at most
    ``rounds``); a round takes each step for ``seconds`` or one call, whichever is longer."""
    by_name = {row.method: row for row in rows}
    per_round = sum(max(seconds, a.seconds) for a in accepted.values())
    fit = int((deadline - time.monotonic()) // max(per_round, 1e-9))
    if accepted and fit < 1:
        for name in accepted:
            by_name[name].status, by_name[name].note = "not timed", "not timed: time budget"
        return
    steps = {name: a.step for name, a in accepted.items()}
    timings = alternating_rounds(steps, tasks, min(rounds, fit), seconds, synchronizer(device))
    for name, values in timings.items():
        by_name[name].rounds, by_name[name].tasks_per_s = values, median(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=PARTS, required=True)
    parser.add_argument("--rows", required=True, help="append JSON rows here")
    parser.add_argument("--deadline-s", type=float, required=True, help="start nothing after")
    parser.add_argument("--tiny", action="store_true", help="the dry run's tiny workloads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--backend", default="inductor", help="torch.compile backend")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    deadline = time.monotonic() + args.deadline_s
    device = torch.device(args.device)
    chosen = variants(args.part, args.backend)
    todo = workloads(args.tiny)
    if args.part == "compile":  # compilation is slow: the workload, then the preset's
        todo = [todo[0], todo[3]]
    for index, workload in enumerate(todo):
        here = tiny_subset(args.part, index, chosen) if args.tiny else chosen
        if not here:
            continue
        print(f"{args.part}: {workload.label}", flush=True)
        # compilation is slow: one variant at a time, each compiled from scratch
        groups = [[v] for v in here] if args.part == "compile" else [here]
        for group in groups:
            if args.part == "compile":
                torch._dynamo.reset()
            try:
                rows = measure(workload, group, device, args.rounds, args.seconds, deadline)
            except Exception as error:  # e.g. out of memory in the reference: the next goes on
                note = f"the workload failed: {type(error).__name__}: {error}"[:300]
                rows = [GpuRow("gpu", workload.label, v.name, "failed", precision=v.precision,
                               note=note) for v in group]  # fmt: skip
            with open(args.rows, "a") as handle:
                handle.writelines(json.dumps(row.as_dict()) + "\n" for row in rows)
            _free(device)


if __name__ == "__main__":
    main()
