"""The C heap of a process that reads prompts on the CPU: freed memory is kept for the next prompt.

Reading a prompt allocates tens of megabytes of short-lived buffers a layer (a 1,500-token prompt:
the MLP's 4.6 MB activations, attention's work space) and frees them at once. glibc's malloc
hands such blocks back to the kernel (an `mmap` of its own, or the heap's top trimmed past a
threshold that it raises only as far as the last block freed), so the next layer's buffers are
fresh pages again, and every page costs a fault when first written: measured here 80,000 to
110,000 faults per cold request on the default model, about 400 MB of pages zeroed for nothing.

Two `mallopt` settings keep those blocks in the heap, to be reused: blocks up to glibc's largest
mmap threshold (32 MiB) come from the heap, and up to `TRIM_BYTES` of free memory at its top
stay mapped. The process's peak memory is the same (the same buffers, reused instead of mapped
again); between requests it keeps what the last prompt used. The numbers are the same: this
changes where buffers live, not what is computed. Measured by `bench/heap.py`.

On a C library other than glibc (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

log = logging.getLogger("airgap_lsp.engine")

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): mallopt refuses more
TRIM_BYTES = 256 * 1024 * 1024

_done: str | None = None  # what the first call said, once per process


def keep_freed_memory() -> str:
    """Set glibc's malloc to keep freed blocks for reuse (once per process). What was done, for
    the log; "" where nothing was (not glibc, or glibc refused)."""
    global _done
    if _done is None:
        _done = _set()
        if _done:
            log.info("C heap: %s", _done)
    return _done


def _set() -> str:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return ""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's own C library
    except (OSError, AttributeError):
        return ""
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 for a value it does not take.
    if mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) != 1:
        log.warning("C heap: glibc refused the thresholds; freed memory goes back to the kernel")
        return ""
    return (
        f"freed blocks up to {MMAP_BYTES >> 20} MiB kept for reuse, up to {TRIM_BYTES >> 20} MiB "
        "free at the heap's top"
    )
