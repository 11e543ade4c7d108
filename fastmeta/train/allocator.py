"""glibc's malloc set up for meta-training on a CPU: memory freed by one step serves the next.

By default glibc gives every tensor over its mmap threshold fresh pages from the system and
returns freed memory at once, so each meta-step faults its activations in again, page by page.
Serving allocations up to 32 MiB (glibc's largest threshold) from the heap and never trimming it
cut a 300-step MAML training run's page faults from 4.2 million to 0.14 million and ran it 1.12x
faster on a 2-core CPU (docs/PERFORMANCE.md). The price: the process keeps its peak memory
between steps instead of shrinking.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
LARGEST_MMAP_THRESHOLD = 32 * 2**20  # glibc refuses more on 64-bit systems
NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Tune this process's glibc malloc as described above; False, changing nothing, where the
    C library is not glibc (macOS, Windows, musl) or refuses the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    )
