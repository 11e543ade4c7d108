"""The arithmetic a meta-step runs in: ``float32``, ``tf32`` (CUDA matmuls and convolutions in
TensorFloat-32) or ``bf16`` (autocast to bfloat16 on any device).

Measured on 5-way 1-shot Omniglot shapes (docs/PERFORMANCE.md): bf16 moves the second-order
meta-gradient by tens of percent, so it is a speed option to validate on the task at hand, not a
free one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

Precision = Literal["float32", "tf32", "bf16"]
PRECISIONS: tuple[str, ...] = ("float32", "tf32", "bf16")


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
    if mode == "bf16":
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
