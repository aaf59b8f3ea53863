"""What the fuzz and load tests share: an editor's session with the real server (`python -m
airgap_lsp serve` over stdio, on the `babble_model`, driven by a pytest-lsp client), every wait
bounded, the audit log read back by id, and the server's memory.

A wait that runs past its bound is a hang: it fails with what was awaited, never retries.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pytest_lsp import make_test_lsp_client

from tests.conftest import BABBLE_STORE
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import Watch

SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
BOUND_S = 60.0  # the longest one request may take on a shared 2-core machine before it is a hang
START_BOUND_S = 180.0  # start-up: import torch, index the workspace, load and hash the model
T = TypeVar("T")


class Hang(AssertionError):
    """A wait ran past its bound."""


async def bounded(awaitable: Awaitable[T], what: str, seconds: float = BOUND_S) -> T:
    """`awaitable`, or a failure that names what never came."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise Hang(f"no answer within {seconds:.0f} s: {what}") from None


class Editor:
    """One editor: a client that started its own server. `name` is the clientInfo the audit
    records."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = make_test_lsp_client()
        self.watch = Watch(self.client)

    @property
    def process(self) -> asyncio.subprocess.Process:
        server = self.client._server  # noqa: SLF001 - pygls keeps the process it started here
        assert server is not None, "the server was never started"
        return server

    def alive(self) -> bool:
        return self.client._server is not None and self.process.returncode is None  # noqa: SLF001

    async def start(self, audit: Path, workspace: Path, model: str, **options: object) -> None:
        """Start the server on the babble store, initialize on `workspace`, wait for its index
        and the model."""
        env = {**os.environ, "AIRGAP_LSP_MODEL_STORE": str(BABBLE_STORE)}
        await self.client.start_io(*SERVER, env=env)

        async def ready() -> None:
            info = types.ClientInfo(name=self.name, version="1")
            await start_indexed(self.client, audit, workspace, info, model=model, **options)
            await self.watch.model_ready()

        await bounded(ready(), f"{self.name}: server start-up", START_BOUND_S)

    async def stop(self) -> int:
        """shutdown, exit; the server's exit code."""
        if self.alive():
            await bounded(self.client.shutdown_async(None), f"{self.name}: shutdown")
            self.client.exit(None)
            await bounded(self.process.wait(), f"{self.name}: exit after shutdown")
        await self.client.stop()
        return int(self.process.returncode or 0)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    # -- requests -------------------------------------------------------------------------------
    def send(self, method: str, params: Any, msg_id: str) -> asyncio.Future[Any]:
        """A request, on its way before this returns, under an id that `cancel` can name.
        (pytest-lsp's `send_request_async` sends nothing until it is awaited.)"""
        return asyncio.wrap_future(self.client.protocol.send_request(method, params, msg_id=msg_id))

    def cancel(self, msg_id: str) -> None:
        """`$/cancelRequest`, as an editor sends it when the user types on."""
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))


def completion_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


def completion_items(result: Any) -> list[types.InlineCompletionItem]:
    if isinstance(result, types.InlineCompletionList):
        return list(result.items)
    return list(result or [])


def audit_id(item: types.InlineCompletionItem) -> str:
    """The audit id a suggestion carries in its accept command."""
    assert item.command is not None and item.command.arguments, item
    (suggestion_id,) = item.command.arguments
    assert isinstance(suggestion_id, str)
    return suggestion_id


class AuditLog:
    """The audit log, read back by id as it grows (whole lines only: a writer may be mid-line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}  # suggestion lines by id
        self.events: list[dict[str, Any]] = []  # accept / not accepted
        self._offset = 0

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        whole = data[: data.rfind(b"\n") + 1]
        self._offset += len(whole)
        for line in whole.splitlines():
            record = json.loads(line)
            if "prompt" in record:
                self.records[record["id"]] = record
            else:
                self.events.append(record)

    def get(self, suggestion_id: str) -> dict[str, Any] | None:
        if suggestion_id not in self.records:
            self.refresh()
        return self.records.get(suggestion_id)


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB, as /proc reports it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
