"""The CPU load reading: other processes' running tasks are seen, this process's own are not."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

import inference.cpu_load as cpu_load
from inference.cpu_load import others_busy, own_running, threads_for


def spin(running: object, stop: object) -> None:
    running.set()  # type: ignore[attr-defined]
    while not stop.is_set():  # type: ignore[attr-defined]
        pass


def read_while(work: str, reading: Callable[[], float]) -> float:
    """`reading()` while `work` spins."""
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
        return reading()
    finally:
        stop.set()
        worker.join()


def test_a_process_spinning_on_a_core_is_seen_as_a_busy_core() -> None:
    assert read_while("child", others_busy) >= 1


def test_this_process_spinning_is_counted_as_its_own_not_as_others_load() -> None:
    # Read directly, not as others' load, which any other program running now would raise: the
    # spinning thread is running or ready to run, and so is the thread reading.
    assert read_while("own thread", own_running) >= 2


def test_this_process_s_running_threads_are_taken_off_the_kernel_s_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu_load, "running_tasks", lambda: 5)
    monkeypatch.setattr(cpu_load, "own_running", lambda: 3)
    assert others_busy() == 2
    monkeypatch.setattr(cpu_load, "running_tasks", lambda: None)  # /proc unreadable
    assert others_busy() == 0


def test_a_thread_fewer_for_each_core_others_keep_busy() -> None:
    assert threads_for(2, 0.0) == 2
    assert threads_for(2, 1.0) == 1
    assert threads_for(2, 3.0) == 1  # never none
    assert threads_for(16, 2.0) == 14
