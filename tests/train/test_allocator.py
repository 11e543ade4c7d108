import subprocess
import sys

import pytest

# Allocates and frees a 16 MiB block (over glibc's default mmap threshold) and prints how much
# of it the process still holds: glibc's default returns it, the tuned allocator keeps it.
HELD_AFTER_FREE = """
import ctypes, sys
from fastmeta.train.allocator import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
size = 16 * 2**20
block = libc.malloc(size)
ctypes.memset(block, 1, size)
before_free = resident()
libc.free(block)
print(tuned, (resident() - before_free + size) / size)
"""


def held_after_free(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", HELD_AFTER_FREE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_only_when_tuned():
    tuned, kept = held_after_free("tuned")
    _, kept_by_default = held_after_free("default")
    assert tuned == "True"
    assert kept > 0.9  # the freed block stays resident for the next allocation
    assert kept_by_default < 0.1  # glibc's default unmapped it
