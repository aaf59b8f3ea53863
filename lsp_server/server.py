"""The language server: the parts each feature uses, wired together, and the settings they read.

Each part owns one concern: the model (model_host.py), the workspace's files (workspace.py),
the suggestions and their audit lines (ledger.py). Features keep their own state in their own
module, and are registered on the server by lsp_server/wiring.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer

from airgap_lsp import __version__
from airgap_lsp.policy import Policy
from airgap_lsp.settings import Settings, SettingsError, parse_settings
from lsp_server.client import show_error
from lsp_server.ledger import Ledger
from lsp_server.model_host import ModelHost
from lsp_server.peer import peer_uid
from lsp_server.protocol import AirgapProtocol
from lsp_server.wire import read_messages
from lsp_server.workspace import Workspace

log = logging.getLogger("airgap_lsp")


class AirgapServer(LanguageServer):
    def __init__(self, policy: Policy | None = None) -> None:
        super().__init__("airgap-lsp", __version__, protocol_cls=AirgapProtocol)
        self.policy = policy or Policy()
        self.over_tcp = False  # serve --tcp: settings that name paths need the policy's leave
        self.settings = self.policy.apply(Settings())[0]
        self.client: dict[str, str] = {"name": "", "version": ""}  # what the editor says it is
        self.warned: set[str] = set()  # the policy's overrides the user was last told of
        self.model = ModelHost(self, self.policy, lambda: self.settings)
        self.files = Workspace(self, lambda: self.settings)
        self.ledger = Ledger(
            self.policy, lambda: self.settings, lambda: self.client, self.show_error
        )
        self.files.closed.append(
            lambda uri: self.ledger.replace_shown(uri, None, "document closed")
        )
        # Called at `shutdown`, before the session's open suggestions are logged as not accepted.
        self.stopping: list[Callable[[], None]] = [self.files.stop]

    # -- the wire -------------------------------------------------------------------------------
    # pygls's start_io and start_tcp, reading with lsp_server.wire: every request is answered,
    # a malformed one with its JSON-RPC error.
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        self._stop_event = stop = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)

        async def serve() -> None:
            try:
                await read_messages(stop, reader, self.protocol)
            finally:  # the editor is gone, with or without `shutdown`: no scan to wait for
                self.files.stop()

        try:
            asyncio.run(serve())
        except BrokenPipeError:
            log.error("The editor closed the connection; shutting down.")
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """One editor per server, as over stdio. A second connection is closed at once: the
        server has one protocol and one writer, so it would otherwise hear one editor's code
        and answer it to another. A connection from another local user is closed too (the
        kernel says whose it is, lsp_server.peer), and settings that name paths are refused
        over TCP unless the policy allows them (apply_settings)."""
        self._stop_event = stop = threading.Event()
        self.over_tcp = True
        serving: list[asyncio.StreamWriter] = []

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            theirs = writer.get_extra_info("peername")
            uid = peer_uid(writer.get_extra_info("sockname"), theirs)
            if uid != os.getuid():  # another local user, or one the kernel cannot name
                owner = "an owner the kernel does not list" if uid is None else f"uid {uid}"
                log.warning(
                    "refused a connection from %s: it belongs to %s, not to this server's user "
                    "(uid %d); only the user who started `airgap-lsp serve --tcp` is served",
                    theirs,
                    owner,
                    os.getuid(),
                )
                writer.close()
                return
            if serving:
                log.warning(
                    "refused a second connection from %s: this server already serves an "
                    "editor; start another `airgap-lsp serve` for it",
                    writer.get_extra_info("peername"),
                )
                writer.close()
                return
            serving.append(writer)
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            try:
                await read_messages(stop, reader, self.protocol)
            finally:
                self.files.stop()
            self.shutdown()

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            addresses = ", ".join(str(s.getsockname()) for s in self._server.sockets)
            log.info("Serving on %s", addresses)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            log.info("TCP server stopped")

    # -- settings -------------------------------------------------------------------------------
    def apply_settings(self, raw: Any, base: Settings) -> Settings | None:
        """Take new settings over `base` (what a key `raw` leaves out takes: see
        airgap_lsp.settings), or keep the last good ones and tell the user why. Returns the
        editor's settings before the policy's, None when they were refused."""
        before = self.settings
        try:
            paths = not self.over_tcp or self.policy.tcp_path_settings
            parsed = parse_settings(raw, base, in_force=self.settings, paths_allowed=paths)
            self.settings, overridden = self.policy.apply(parsed)
        except SettingsError as exc:
            self.show_error(str(exc))
            return None
        for message in overridden:
            if message not in self.warned:  # each change is applied over the editor's values
                self.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Warning, message=message)
                )
        self.warned = set(overridden)
        if self.model.started:  # after start-up: a new model, device or dtype reloads
            self.model.ensure()
        s = self.settings
        rules = (s.context_exclude, s.policy_exclude, s.knowledge_base)
        was = (before.context_exclude, before.policy_exclude, before.knowledge_base)
        if self.files.started and rules != was:
            self.files.start_indexing()  # what may be read changed: index again under the new rules
        return parsed

    def show_error(self, message: str) -> None:
        show_error(self, message)
