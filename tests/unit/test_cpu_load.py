"""The CPU load gauge: other processes' busy cores are seen, this process's own work is not."""

from __future__ import annotations

import multiprocessing
import threading
import time

from inference.cpu_load import TICKS, _sample, threads_for

WINDOW_S = 0.6  # long enough for /proc's 10 ms ticks to count a busy core to within a tenth


def spin(running: object, stop: object) -> None:
    running.set()  # type: ignore[attr-defined]
    while not stop.is_set():  # type: ignore[attr-defined]
        pass


def others_busy_while(work: str) -> float:
    """Cores' worth of CPU other processes used over a window in which `work` spins."""
    stop = multiprocessing.Event()
    running = multiprocessing.Event()
    if work == "child":
        worker: multiprocessing.Process | threading.Thread = multiprocessing.Process(
            target=spin, args=(running, stop)
        )
    else:
        worker = threading.Thread(target=spin, args=(running, stop))
    worker.start()
    try:
        assert running.wait(30), "the spinning worker did not start"
        first = _sample()
        time.sleep(WINDOW_S)  # the window measured, while the worker spins
        last = _sample()
    finally:
        stop.set()
        worker.join()
    assert first is not None and last is not None, "/proc/stat is readable on Linux"
    return ((last[1] - first[1]) - (last[2] - first[2])) / TICKS / (last[0] - first[0])


def test_a_process_spinning_on_a_core_is_seen_as_a_busy_core() -> None:
    assert others_busy_while("child") > 0.6


def test_this_process_spinning_is_not_counted_as_others_load() -> None:
    assert others_busy_while("own thread") < 0.6


def test_a_thread_fewer_for_each_core_others_keep_busy() -> None:
    assert threads_for(2, 0.0) == 2
    assert threads_for(2, 0.2) == 2  # background noise: not a busy core
    assert threads_for(2, 0.4) == 1
    assert threads_for(2, 1.0) == 1
    assert threads_for(2, 3.0) == 1  # never none
    assert threads_for(16, 2.1) == 14
