"""A helper process a test starts (a team server), watched: when it dies, the failure says how
(its exit status or signal) and what it last wrote, instead of a later "connection refused".

    async with watched(command, "the team server", ready=b"listening on ") as (process, line):
        ...

Its stdout is read until the ready line; its stderr goes to a file, so that a chatty process
never blocks on a full pipe and its last lines are there to quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence

from tests.e2e.harness import bounded

TAIL_LINES = 20


class ProcessDied(AssertionError):
    """A helper process ended on its own."""


def exit_status(returncode: int) -> str:
    """`exit status 1`, or `killed by SIGILL (signal 4)` for a process a signal ended."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "an unknown signal"
    return f"killed by {name} (signal {-returncode})"


def tail(data: bytes, lines: int = TAIL_LINES) -> str:
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else "(nothing)"


@contextlib.asynccontextmanager
async def watched(
    command: Sequence[str], what: str, *, ready: bytes, start_bound: float = 120
) -> AsyncIterator[tuple[asyncio.subprocess.Process, bytes]]:
    """Starts `command`, waits for a stdout line that starts with `ready`, yields the process and
    that line, and kills it on leaving. A process that ends before it is ready, or on its own
    while in use, fails with its exit status or signal and the last lines of its output."""
    with tempfile.TemporaryFile() as err:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=err
        )

        def died(when: str, stdout: bytes) -> ProcessDied:
            assert process.returncode is not None
            err.seek(0)
            return ProcessDied(
                f"{what} {when}: {exit_status(process.returncode)}. "
                f"Its last output:\n{tail(stdout + err.read())}"
            )

        try:
            assert process.stdout is not None
            seen = b""
            while True:
                line = await bounded(process.stdout.readline(), f"{what}'s start-up", start_bound)
                if line.startswith(ready):
                    break
                seen += line
                if not line:  # end of output: the process is gone or closed its stdout
                    await bounded(process.wait(), f"{what} to exit after closing its output")
                    raise died("ended before it was ready", seen)
            try:
                yield process, line
            except Exception as exc:
                if process.returncode is None:
                    raise
                raise died("ended while in use", b"") from exc
            if process.returncode is not None:
                raise died("ended while in use", b"")
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
