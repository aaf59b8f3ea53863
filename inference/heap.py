"""The C heap of a process that reads prompts on the CPU: freed memory is kept for the next prompt.

Reading a prompt allocates tens of megabytes of short-lived buffers a layer (a 1,500-token prompt:
the MLP's 4.6 MB activations, attention's work space) and frees them at once. By default glibc's
malloc gives blocks that large a mapping of their own, unmapped when freed; it raises that
threshold only to the largest block freed so far, and hands the heap's free top back to the
kernel past twice that. So the next layer's buffers are fresh pages again, and each page costs a
fault and a zeroing when first written: 26,000 to 140,000 faults per cold request on the default
model in `bench/heap.py`'s runs, 100 to 570 MB of pages.

Three `mallopt` settings keep those blocks in the heap, to be reused: blocks below glibc's largest
mmap threshold (32 MiB) come from the heap, up to `TRIM_BYTES` of free memory at a heap's top
stays mapped, and a top pad of a whole heap (`PAD_BYTES`) keeps a thread's heaps. The server reads
prompts on its model worker thread, whose arena is a chain of 64 MiB heaps, and glibc unmaps one
that falls wholly free unless the free chunk at the end of the heap before it, with the part of
that heap not yet grown into, is smaller than the top pad (arena.c's `heap_trim`); with the pad
as large as a heap, it always is. Without the pad, which heap fell free depended on which small
block outlived a prompt: from none to 15,000 faults a request. The pad also makes glibc map new
memory a heap at a time (the main arena moves `brk` a pad beyond what is asked; a thread's new
heap is made writable whole): pages only when written, but committed memory: 64 MiB for each
thread that allocates, which counts under strict overcommit (`vm.overcommit_memory=2`) or a data
limit (`ulimit -d`, systemd's `LimitDATA`). There, set `MALLOC_TOP_PAD_` (to 131072, glibc's
default) and the process leaves its heap as glibc has it. A heap is 64 MiB unless the
`glibc.malloc.hugetlb=2` tunable makes it larger; then a heap that falls free may go again.
The numbers are the same: this changes where buffers live, not what is computed. What it may
cost is memory between requests: the heap keeps what the largest prompt so far used. Measured
after 24 prompts (`bench/heap.py`), resident memory was from 60 MB less to about 200 MB more
than handed back (bf16 on an AMX Xeon, before the pad; float32 on an AVX2 EPYC with it, 754 and
756 MB against 686 and 563); the peak during the requests, the same within the spread.

Nothing is changed on a C library other than glibc (musl, macOS), where the environment already
sets one of these thresholds (`GLIBC_TUNABLES`' `glibc.malloc.mmap_threshold`, `trim_threshold`
or `top_pad`, or `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`: the
administrator's choice stands), or where malloc is another allocator's (preloaded or linked in:
its `mallopt`, if any, would claim a setting it does not make).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

log = logging.getLogger("airgap_lsp.engine")

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): mallopt refuses more
TRIM_BYTES = 256 * 1024 * 1024
# glibc's HEAP_MAX_SIZE on 64-bit (2 x the largest mmap threshold): a thread's heap is deleted only
# while the one before it has at least the pad free, and a heap holds no more than this.
PAD_BYTES = 2 * MMAP_BYTES
# The malloc settings of glibc's environment that this would override (tunables, then the
# older variables): where one is set, the administrator's choice stands.
TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold", "glibc.malloc.top_pad")
VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_done: str | None = None  # what the first call said, once per process


def glibc() -> bool:
    """Whether this process runs on glibc (on Linux), the C library whose malloc this tunes."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> str:
    """Set glibc's malloc to keep freed blocks for reuse (once per process). What was done, for
    the log; "" where nothing was."""
    global _done
    if _done is None:
        _done = _set()
        if _done:
            log.info("C heap: %s", _done)
    return _done


def kept() -> str | None:
    """What `keep_freed_memory` said in this process; None if nothing has called it."""
    return _done


def _set() -> str:
    if not glibc():
        return ""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    tuned = [t for t in TUNABLES if t in tunables] + [v for v in VARIABLES if v in os.environ]
    if tuned:
        log.info("C heap: left as the environment has it (%s set)", ", ".join(tuned))
        return ""
    if _malloc_elsewhere():
        log.info("C heap: left alone: malloc is another allocator's (preloaded or linked in)")
        return ""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's own C library
    except (OSError, AttributeError):
        return ""
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 for a value it does not take (a 32-bit glibc: 512 KiB at
    # most). It is not thread-safe against another mallopt; this is the process's only one.
    settings = (
        (M_MMAP_THRESHOLD, MMAP_BYTES),
        (M_TRIM_THRESHOLD, TRIM_BYTES),
        (M_TOP_PAD, PAD_BYTES),
    )
    if any(mallopt(param, value) != 1 for param, value in settings):
        log.warning("C heap: glibc refused a setting; freed memory may go back to the kernel")
        return ""
    return (
        f"freed blocks below {MMAP_BYTES >> 20} MiB kept for reuse, up to {TRIM_BYTES >> 20} MiB "
        "free at a heap's top, a thread's heaps kept when they fall free"
    )


def _malloc_elsewhere() -> bool:
    """Whether the process's malloc is not glibc's own (jemalloc, tcmalloc ... preloaded or
    linked in): its mallopt, if it has one, would not do this."""
    try:
        here = ctypes.CDLL(None).malloc
        libc = ctypes.CDLL("libc.so.6").malloc
    except (OSError, AttributeError):
        return True
    return ctypes.cast(here, ctypes.c_void_p).value != ctypes.cast(libc, ctypes.c_void_p).value
