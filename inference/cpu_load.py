"""How many cores other processes keep busy, so that decoding on the CPU leaves them alone.

torch's parallel regions wait for their slowest thread. With as many threads as cores and a build
spinning on one of them, every step waits for a thread the kernel took off its core: measured here
with one busy process on 2 cores, 2 threads decoded at 1.1 tokens/s and 1 thread at 7.7
(`bench/threads.py`). So a generation on the CPU takes one thread fewer for each core that other
processes kept busy over the last second.

The load is read from /proc (all CPUs' busy time, less this process's own) by one daemon thread,
4 times a second: two small files, no measurable cost. Where /proc cannot be read, no load is seen.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

PERIOD_S = 0.25  # how often the load is read
SPAN_S = 1.0  # the load is the average over this long
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def threads_for(cores: int, others_busy: float) -> int:
    """Threads to decode with: one fewer for each core others keep busy over a quarter of the
    time, and at least one."""
    return max(1, cores - int(others_busy + 0.75))


def _sample() -> tuple[float, int, int] | None:
    """(time, busy ticks of all CPUs, this process's ticks), or None if /proc is unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            cpu = fh.readline().split()
        with open("/proc/self/stat", encoding="ascii", errors="replace") as fh:
            own = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
        busy = sum(int(cpu[i]) for i in (1, 2, 3, 6, 7, 8))
        mine = int(own[11]) + int(own[12])  # utime, stime (fields 14 and 15 of stat)
    except (ValueError, IndexError):
        return None
    return time.monotonic(), busy, mine


class CpuGauge:
    """The cores other processes kept busy over the last SPAN_S, read in the background."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=int(SPAN_S / PERIOD_S) + 1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.read()
        threading.Thread(target=self._run, name="airgap-cpu-load", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(PERIOD_S):
            self.read()

    def read(self) -> None:
        if (sample := _sample()) is not None:
            with self._lock:
                self._samples.append(sample)

    def others_busy(self) -> float:
        """Cores' worth of CPU time other processes used over the last second (0 if unknown)."""
        with self._lock:
            if len(self._samples) < 2:
                return 0.0
            (t0, busy0, mine0), (t1, busy1, mine1) = self._samples[0], self._samples[-1]
        seconds = t1 - t0
        if seconds <= 0:
            return 0.0
        return max(0.0, ((busy1 - busy0) - (mine1 - mine0)) / TICKS / seconds)


_gauge: CpuGauge | None = None
_gauge_lock = threading.Lock()


def gauge() -> CpuGauge:
    """The process's one gauge, started on first use."""
    global _gauge
    with _gauge_lock:
        if _gauge is None:
            _gauge = CpuGauge()
        return _gauge
