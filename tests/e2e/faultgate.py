"""Start `airgap-lsp serve` with a test-only gate in the audit log's write.

Usage: python -m tests.e2e.faultgate   (as a module, so that it runs this checkout's server)

The server gets a command `airgap.test.holdNextAuditWrite`. After it, the next audit line is
written only in part: its first half goes into the file for real, then the client is told with
the notification `airgap/test/auditWriteHeld` ({"path", "written", "total"}) and the writing
thread stops there, the file lock held, until the process is killed. A test kills it at that
moment, as a power cut or the kernel's out-of-memory killer would.

A second gate, `airgap.test.pauseNextAuditLine`, pauses the next suggestion's line before it is
written: the client is told with `airgap/test/auditLinePaused` ({"id"}), and the line is written
when the client sends `airgap.test.resumeAuditLine`. Requests made meanwhile are served as usual.
Each accept / not-accepted line, once written, is told to the client with `airgap/test/auditEvent`
({"id", "kind", "reason"}).

Two more gates are set before the server starts, by the environment: with
`AIRGAP_TEST_BREAK=scan` the workspace scan fails after its second file (a fault of the
server's, not of a file), with `AIRGAP_TEST_BREAK=rankers` every build of the similar-code
rankers after a scan fails.

Nothing of the server's own code changes: the first gate stands in for the `os` module that
audit/writer.py calls, and passes every other call through; the second wraps the server's
ledger's `audit` method.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import audit.writer as audit_writer
import lsp_server.wiring as server_module
from context.index import WorkspaceIndex
from context.similar import SimilarCode

HOLD = "airgap.test.holdNextAuditWrite"
HELD = "airgap/test/auditWriteHeld"
HOLD_AT_MOST_S = 600  # a test that never kills the server still ends
PAUSE = "airgap.test.pauseNextAuditLine"
PAUSED = "airgap/test/auditLinePaused"
RESUME = "airgap.test.resumeAuditLine"
EVENT = "airgap/test/auditEvent"

BREAK = "AIRGAP_TEST_BREAK"
BROKEN = "the test gate broke this"

_armed: dict[str, Any] = {}  # "server", "loop", "path": set by the command, taken by the write


class _GatedOs:
    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if not _armed:
            return os.write(fd, data)
        server, loop, path = _armed.pop("server"), _armed.pop("loop"), _armed.pop("path")
        written = os.write(fd, bytes(data[: len(data) // 2]))
        held = {"path": path, "written": written, "total": len(data)}
        loop.call_soon_threadsafe(server.protocol.notify, HELD, held)
        threading.Event().wait(HOLD_AT_MOST_S)
        raise OSError(f"the test gate held this audit write for {HOLD_AT_MOST_S} s")


audit_writer.os = _GatedOs()  # type: ignore[assignment]

build = server_module.build_server


def build_with_gate(policy=None):  # type: ignore[no-untyped-def]
    server = build(policy)

    @server.command(HOLD)
    def hold_next_audit_write(*_args):  # type: ignore[no-untyped-def]
        path = str(server.ledger.sink().path)
        _armed.update(server=server, loop=asyncio.get_running_loop(), path=path)
        return {"armed": True}

    paused: dict[str, Any] = {}  # "loop" and "gate" while armed; "gate" while a line waits
    write_line = server.ledger.audit

    def audit_after_pause(record):  # type: ignore[no-untyped-def]
        if (loop := paused.pop("loop", None)) is not None:
            gate = paused["gate"]
            loop.call_soon_threadsafe(server.protocol.notify, PAUSED, {"id": record.id})
            if not gate.wait(HOLD_AT_MOST_S):
                raise OSError(f"the test gate paused this audit line for {HOLD_AT_MOST_S} s")
        write_line(record)

    server.ledger.audit = audit_after_pause  # type: ignore[method-assign]
    write_event = server.ledger.audit_event

    def audit_event_told(event, suggestion_id, uri, reason=""):  # type: ignore[no-untyped-def]
        write_event(event, suggestion_id, uri, reason)
        told = {"id": suggestion_id, "kind": event, "reason": reason}
        server.protocol.notify(EVENT, told)

    server.ledger.audit_event = audit_event_told  # type: ignore[method-assign]

    @server.command(PAUSE)
    def pause_next_audit_line(*_args):  # type: ignore[no-untyped-def]
        paused.update(loop=asyncio.get_running_loop(), gate=threading.Event())
        return {"armed": True}

    @server.command(RESUME)
    def resume_audit_line(*_args):  # type: ignore[no-untyped-def]
        paused.pop("gate").set()
        return {"resumed": True}

    return server


server_module.build_server = build_with_gate


def _break(what: str) -> None:
    if what == "scan":
        scan = WorkspaceIndex.scan

        def failing_scan(self, progress=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            def failing_progress(done: int, total: int) -> None:
                if progress is not None:
                    progress(done, total)
                if done == 2:
                    raise RuntimeError(BROKEN)

            return scan(self, failing_progress, *args, **kwargs)

        WorkspaceIndex.scan = failing_scan  # type: ignore[method-assign]
    elif what == "rankers":

        def failing_prepare(self, cancel=None):  # type: ignore[no-untyped-def]
            raise RuntimeError(BROKEN)

        SimilarCode.prepare = failing_prepare  # type: ignore[method-assign]
    elif what:
        raise SystemExit(f"{BREAK}={what!r}: the gates are 'scan' and 'rankers'")


_break(os.environ.get(BREAK, ""))

from airgap_lsp.cli import main  # noqa: E402

if __name__ == "__main__":  # the index's worker processes import this module again
    sys.exit(main(["serve"]))
