"""What the server shows in the editor: work-done progress while it works, and errors."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from lsprotocol import types
from pygls.lsp.server import LanguageServer

log = logging.getLogger("airgap_lsp")


class Progress:
    """LSP work-done progress, if the editor supports it; a no-op otherwise."""

    # Reports may come after the end (from a worker thread): they are dropped then.

    # A worker thread reports at most this often (a scan calls after every file).
    THROTTLE_S = 0.2

    def __init__(self, server: LanguageServer, title: str) -> None:
        self.server, self.title = server, title
        self.token: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0.0

    async def begin(self) -> None:
        self._loop = asyncio.get_running_loop()
        caps = self.server.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return
        self.token = f"airgap-{uuid.uuid4()}"
        await self.server.work_done_progress.create_async(self.token)
        self.server.work_done_progress.begin(
            self.token, types.WorkDoneProgressBegin(title=self.title, cancellable=False)
        )

    def report(self, message: str, done: int = 0, total: int = 0) -> None:
        if self.token:
            percentage = int(100 * done / total) if total else None
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def report_from_thread(
        self, message: str, done: int = 0, total: int = 0, *, last: bool = False
    ) -> None:
        """`report` from a worker thread, on the event loop, at most every THROTTLE_S seconds
        (and always for the `last` report)."""
        now = time.monotonic()
        if self._loop is None or (now - self._last <= self.THROTTLE_S and not last):
            return
        self._last = now
        self._loop.call_soon_threadsafe(self.report, message, done, total)

    def end(self, message: str) -> None:
        if self.token:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )
            self.token = None


@contextmanager
def following(ls: LanguageServer, token: types.ProgressToken | None, title: str) -> Iterator[None]:
    """Work-done progress on the token an editor sent with its request: `begin` when the
    work starts, `end` when it stops, however it stops. Without a token, nothing is sent."""
    if token is None:
        yield
        return
    progress = ls.work_done_progress
    progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
    try:
        yield
    finally:
        progress.end(token, types.WorkDoneProgressEnd())
        progress.tokens.pop(token, None)  # pygls keeps each token it began: one per request


def show_error(ls: LanguageServer, message: str) -> None:
    """An error the user can act on: logged, and shown in the editor."""
    log.error(message)
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=message))
