"""The C heap keeps a prompt's freed buffers for the next one (inference.heap)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the setting is glibc's; elsewhere nothing is changed",
)

# A process that does what reading a prompt does to the heap, on a small scale: it writes several
# buffers of megabytes (a layer's activations), frees them all, and does it again; it prints the
# page faults of the last round's writes.
BUFFERS, SIZE = 4, 16 * 1024 * 1024
REUSE = textwrap.dedent(
    f"""
    import ctypes, resource, sys
    if sys.argv[1] == "kept":
        from inference.heap import keep_freed_memory
        assert keep_freed_memory(), "nothing was set"
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    for _ in range(3):  # past glibc's own thresholds rising on the first frees
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        blocks = [libc.malloc({SIZE}) for _ in range({BUFFERS})]
        for block in blocks:
            ctypes.memset(block, 1, {SIZE})
        faulted = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        for block in blocks:
            libc.free(block)
    print(faulted)
    """
)


def faults(setting: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", REUSE, setting], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


def test_a_freed_buffer_is_reused_without_paging_memory_in_again() -> None:
    pages = BUFFERS * SIZE // 4096
    # glibc's default hands the freed blocks back to the kernel: their pages fault again.
    assert faults("handed back") > pages // 2
    # Kept: the same memory, already mapped, is written again.
    assert faults("kept") < pages // 20


def test_it_is_set_once_a_process_and_said_in_the_log() -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from inference.heap import keep_freed_memory\n"
        "first = keep_freed_memory()\n"
        "assert keep_freed_memory() == first\n"
        "print(first)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("freed blocks up to 32 MiB kept for reuse")
    assert done.stderr.count("C heap: freed blocks") == 1, done.stderr
