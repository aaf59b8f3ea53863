"""The C heap keeps a prompt's freed buffers for the next one (inference.heap)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inference.heap import glibc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not glibc(), reason="the setting is glibc's; elsewhere nothing is changed"
)

# A process that does what reading a prompt does to the heap, on a small scale: it writes several
# buffers of megabytes (a layer's activations), frees them all, and does it again, on its main
# thread or, as the server's model worker reads prompts, on a thread of its own (whose arena is a
# chain of 64 MiB heaps: six buffers of 16 MiB take two heaps or more). It prints the page faults
# of the last round's writes on that thread and the heaps' size after the last frees (every
# arena's, mallinfo2).
BUFFERS, THREAD_BUFFERS, SIZE = 4, 6, 16 * 1024 * 1024
REUSE = textwrap.dedent(
    f"""
    import ctypes, json, logging, resource, sys, threading
    logging.basicConfig(level=logging.INFO)
    from inference.heap import keep_freed_memory
    setting, buffers, where = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    said = keep_freed_memory() if setting == "kept" else ""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    # mallinfo2 since glibc 2.33; mallinfo's int fields before it (enough for the sizes here)
    two = hasattr(libc, "mallinfo2")
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t if two else ctypes.c_int) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    info = libc.mallinfo2 if two else libc.mallinfo
    info.restype = Info
    done = {{}}

    def work():
        for _ in range(3):  # past glibc's own thresholds rising on the first frees
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            blocks = [libc.malloc({SIZE}) for _ in range(buffers)]
            for block in blocks:
                ctypes.memset(block, 1, {SIZE})
            done["faults"] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
            for block in blocks:
                libc.free(block)
        done["heap"] = info().arena

    if where == "thread":
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    else:
        work()
    print(json.dumps({{"said": said, **done}}))
    """
)


def clean_env(**env: str) -> dict[str, str]:
    """This environment without malloc tuning or a preloaded library (the machine's own would
    change what glibc does by default), plus `env`."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GLIBC_TUNABLES", "LD_PRELOAD") and not k.startswith("MALLOC_")
    }
    return {**kept, **env}


def run(setting: str, buffers: int = BUFFERS, where: str = "main", **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", REUSE, setting, str(buffers), where],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=clean_env(**env),
    )
    return {**json.loads(done.stdout.splitlines()[-1]), "log": done.stderr}


def test_freed_buffers_stay_in_the_heap_and_are_written_again_without_faults() -> None:
    pages = BUFFERS * SIZE // 4096
    # glibc's default hands the freed blocks back to the kernel.
    back = run("handed back")
    assert back["heap"] < BUFFERS * SIZE, back
    # Kept: they stay the heap's, and the same memory, already mapped, is written again.
    kept = run("kept")
    assert kept["said"].startswith("freed blocks below 32 MiB kept for reuse"), kept
    assert kept["heap"] >= BUFFERS * SIZE, kept
    assert kept["faults"] < pages // 20, kept


def test_a_threads_heaps_are_kept_when_its_buffers_are_all_freed() -> None:
    # What the server's model worker does: a heap of its arena that falls wholly free is unmapped
    # by glibc's default, and by the two thresholds alone (12,289 faults here: a heap's pages),
    # so the next prompt's buffers there are fresh pages; with the top pad they are kept and
    # written again where they were. The heaps' size says it whatever a fault maps (huge pages).
    pages = THREAD_BUFFERS * SIZE // 4096
    back = run("handed back", THREAD_BUFFERS, "thread")
    assert back["heap"] < THREAD_BUFFERS * SIZE, back
    kept = run("kept", THREAD_BUFFERS, "thread")
    assert "a thread's heaps kept when they fall free" in kept["said"], kept
    assert kept["heap"] >= THREAD_BUFFERS * SIZE, kept
    assert kept["faults"] < pages // 20, kept


def test_it_is_set_once_a_process_and_said_in_the_log() -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from inference.heap import keep_freed_memory\n"
        "first = keep_freed_memory()\n"
        "assert keep_freed_memory() == first\n"
        "print(first)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=clean_env(),
    )
    assert done.stdout.startswith("freed blocks below 32 MiB kept for reuse")
    assert done.stderr.count("C heap: freed blocks") == 1, done.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"},
        {"MALLOC_TRIM_THRESHOLD_": "1048576"},
    ],
    ids=["tunable", "variable"],
)
def test_malloc_tuning_in_the_environment_is_left_as_it_is(env: dict[str, str]) -> None:
    # An administrator's own choice for glibc's malloc stands: nothing is set over it.
    tuned = run("kept", **env)
    assert tuned["said"] == ""
    assert "left as the environment has it" in tuned["log"]
    assert tuned["heap"] < BUFFERS * SIZE, tuned


def test_an_unrelated_malloc_setting_does_not_stop_it() -> None:
    # A container's arena limit says nothing about these thresholds.
    kept = run("kept", MALLOC_ARENA_MAX="2")
    assert kept["said"].startswith("freed blocks below 32 MiB"), kept
    assert kept["heap"] >= BUFFERS * SIZE, kept
