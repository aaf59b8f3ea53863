"""This machine's CPU: its model name and its flags, read once from /proc/cpuinfo.

The engine picks bf16 where the CPU computes it (inference.engine.cpu_has_bf16) and packs
attention where bf16's one-row kernel is slow (inference.attention.one_row_is_slow); the
benchmarks name the machine they ran on by the same reading (`describe`).
"""

from __future__ import annotations

import os
import platform
from functools import cache

# The flags that decide how the model runs here, named where a benchmark says what machine it was.
NOTABLE = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The first processor's model name and flags ("" and none where there is no cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return "", frozenset()

    def first(key: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")

    return first("model name"), frozenset(first("flags").split())


def flags() -> frozenset[str]:
    return _cpuinfo()[1]


def model() -> str:
    return _cpuinfo()[0] or platform.processor() or platform.machine()


def describe() -> str:
    """The machine as a benchmark's report names it: model, cores, and the notable flags it has
    and lacks."""
    have = [f for f in NOTABLE if f in flags()]
    lacks = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f not in flags()]
    return f"{model()}, {os.cpu_count()} cores; flags: {' '.join(have) or 'none of note'}" + (
        f" (no {' '.join(lacks)})" if lacks else ""
    )
