"""The arithmetic a meta-step runs in: ``float32``, ``tf32`` (CUDA matmuls and convolutions in
TensorFloat-32), ``bf16`` (autocast to bfloat16 on any device) or ``auto`` (bf16 where the device
computes it natively, float32 elsewhere).

Measured on 5-way 1-shot Omniglot shapes (docs/PERFORMANCE.md): bf16 moves the second-order
meta-gradient by tens of percent, so it is a speed option to validate on the task at hand, not a
free one. It is only faster where the hardware computes in bfloat16: on a CPU without AVX512-BF16
or AMX, torch runs bf16 convolutions on its slow reference kernels (a Conv4 MAML meta-step was 3.6x
slower than float32 on such a CPU), so asking for bf16 there warns once, and ``auto`` takes float32
there. On a CPU with AVX512-BF16 it kept MAML's and ProtoNets' accuracy in training and ran a
mini-ImageNet ProtoNets step about 3x faster (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["float32", "tf32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("float32", "tf32", "bf16", "auto")


CPUINFO = Path("/proc/cpuinfo")  # where a torch without the capability probe reads the flags


@functools.cache
def native_cpu_bf16() -> bool | None:
    """Whether this CPU has AVX512-BF16 or AMX-BF16: torch's capability probe where it has one
    (torch 2.4 has not), else the flags Linux lists in ``/proc/cpuinfo``; ``None`` where neither
    says. Read once: every bf16 meta-step asks."""
    names = ("avx512_bf16", "amx_bf16")
    probe = getattr(torch._C._cpu, "_get_cpu_capability", None)
    if probe is not None:
        capability = probe()
        return any(capability.get(name) for name in names)
    try:
        flags = set(CPUINFO.read_text().split())
    except OSError:
        return None
    return any(name in flags for name in names)


def native_bf16(device: torch.device) -> bool | None:
    """Whether ``device`` computes in bfloat16 natively (CUDA: torch says; CPU: AVX512-BF16 or
    AMX, see :func:`native_cpu_bf16`); ``None`` where that cannot be told."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return True  # other accelerators: trust the user
    return native_cpu_bf16()


def resolve_precision(mode: str, device: torch.device) -> str:
    """``mode`` itself, or for ``auto`` what it means on ``device``: ``bf16`` where
    :func:`native_bf16` (not where it cannot be told), else ``float32``."""
    if mode != "auto":
        return mode
    return "bf16" if native_bf16(device) else "float32"


@functools.cache
def _warn_without_native_bf16(device_type: str) -> None:
    warnings.warn(
        f"train.precision=bf16 on a {device_type} without native bfloat16 (no AVX512-BF16 or "
        "AMX): torch falls back to slow kernels, so this runs slower than float32; use "
        "train.precision=float32 here",
        RuntimeWarning,
        stacklevel=4,
    )


@contextmanager
def precision(mode: str, device: torch.device, cache: bool = True) -> Iterator[None]:
    """Run the block in ``mode`` on ``device``; TF32 switches are restored afterwards.

    ``float32`` turns TF32 off for CUDA matmuls and cuDNN convolutions (torch leaves it on for
    convolutions by default); ``tf32`` turns both on; on a CPU both are plain float32. ``cache``
    keeps autocast's bf16 copies of the weights for the block; a captured CUDA graph must not
    (its replays would reuse the copies of the weights it was captured with).
    """
    if mode not in PRECISIONS:
        raise ValueError(f"unknown precision {mode!r}; choose one of {', '.join(PRECISIONS)}")
    mode = resolve_precision(mode, device)
    if mode == "bf16":
        if native_bf16(device) is False:
            _warn_without_native_bf16(device.type)
        with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache):
            yield
        return
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
