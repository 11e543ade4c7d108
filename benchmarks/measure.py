"""Timing, peak memory and machine description shared by the benchmarks.

Peak memory of one meta-step: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
allocated before the step; on CPU, the growth of the process's resident set (Linux: the peak
``VmHWM`` is reset through ``/proc/self/clear_refs`` and free heap pages are returned with
``malloc_trim`` first, so memory freed by an earlier method does not hide this one's).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.bench_sampling import cpu_model


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def throughput(
    step: Callable[[], None], tasks: int, seconds: float, sync: Callable[[], None]
) -> float:
    """Tasks per second over whole calls of ``step`` for at least ``seconds`` (one call minimum)."""
    calls, start = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * tasks / elapsed


def alternating_rounds(
    steps: dict[str, Callable[[], None]],
    tasks: int,
    rounds: int,
    seconds: float,
    sync: Callable[[], None],
) -> dict[str, list[float]]:
    """Tasks/s of every method in ``rounds`` rounds, methods interleaved within each round.

    Interleaving spreads background load over all methods alike, which matters on a shared
    machine.
    """
    results: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            results[name].append(throughput(step, tasks, seconds, sync))
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_memory_mb(step: Callable[[], None], device: torch.device) -> float | None:
    """Peak memory one call of ``step`` adds, in MB (``None`` where it cannot be measured)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    _release_free_heap()
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return None
    step()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return (peak - before) / 1024


def machine(device: torch.device) -> dict[str, object]:
    """What the numbers were measured on."""
    info: dict[str, object] = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()})",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": os.getloadavg(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def timing_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with the options every small benchmark script shares: ``--rounds``,
    ``--seconds``, ``--threads`` (torch intra-op threads, applied by :func:`parse`), ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a round")
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--json", help="also write the rows here")
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and apply ``--threads``."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args
