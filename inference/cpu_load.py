"""How many cores other processes keep busy, so that decoding on the CPU leaves them alone.

torch's parallel regions wait for their slowest thread. With as many threads as cores and a build
spinning on one of them, every step waits for a thread the kernel took off its core: measured here
with one busy process on 2 cores, 2 threads decoded at 1.0 tokens/s and 1 thread at 8.0
(`bench/threads.py`). So a generation on the CPU takes one thread fewer for each core that other
processes are using when it starts.

"Now" is the kernel's count of running tasks (/proc/loadavg), less this process's own running
threads, read 5 times a millisecond apart: a load that has just ended (the last generation of
another program) is not counted, as an average over the last second would.
Where /proc cannot be read, no load is seen.
"""

from __future__ import annotations

import os
import statistics
import time

SAMPLES = 5
GAP_S = 0.001


def threads_for(cores: int, others_busy: float) -> int:
    """Threads to decode with: one fewer for each core others keep busy, and at least one."""
    return max(1, cores - int(others_busy + 0.25))


def own_running() -> int:
    """This process's threads the kernel counts as running or ready to run (the caller among
    them): what `others_busy` takes off the kernel's count."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # the thread ended
        count += state == "R"
    return max(count, 1)


def running_tasks() -> int | None:
    """The kernel's count of tasks running or ready to run, this process's among them; None
    where /proc cannot be read."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _others_now() -> int | None:
    if (running := running_tasks()) is None:
        return None
    return max(0, running - own_running())


def others_busy() -> float:
    """Other processes' running tasks now: the median of 5 readings, 0 if /proc is unreadable."""
    seen: list[int] = []
    for n in range(SAMPLES):
        if n:
            time.sleep(GAP_S)
        if (now := _others_now()) is None:
            return 0.0
        seen.append(now)
    return float(statistics.median(seen))
