"""`airgap-lsp serve --tcp` listens on loopback only, serves one editor of the user who started
it, and takes no path from it, unless the policy says so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from airgap_lsp.paths import model_store_root
from tests.conftest import cursor_file
from tests.e2e.harness import bounded
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc

pytestmark = pytest.mark.e2e


class TcpServer:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port

    async def logged(self, containing: str) -> str:
        """The server's next log line that contains `containing`."""
        assert self.process.stderr is not None
        while True:
            line = await bounded(self.process.stderr.readline(), f"a log line {containing!r}")
            assert line, "the server exited"
            if containing in line.decode():
                return line.decode()

    async def editor(self, **options: object) -> LanguageClient:
        client = make_test_lsp_client()
        await client.start_tcp("127.0.0.1", self.port)
        params = types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options=options
        )
        await bounded(client.initialize_session(params), "initialize")
        return client


@contextlib.asynccontextmanager
async def tcp_server(home: Path, policy: Path | None = None) -> AsyncIterator[TcpServer]:
    env = {**os.environ, "AIRGAP_LSP_HOME": str(home)}
    env["AIRGAP_LSP_MODEL_STORE"] = str(model_store_root())
    if policy is not None:
        env["AIRGAP_LSP_POLICY"] = str(policy)
    command = [sys.executable, "-m", "airgap_lsp", "serve", "--tcp", "--port", "0"]
    server = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert server.stderr is not None
        port = None
        while port is None:  # the server logs its address once it listens
            line = (await bounded(server.stderr.readline(), "the server's address")).decode()
            assert line, "the server exited before listening"
            if m := re.search(r"Serving on \('127\.0\.0\.1', (\d+)\)", line):
                port = int(m.group(1))
        yield TcpServer(server, port)
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()


async def stop(client: LanguageClient, server: TcpServer) -> None:
    await bounded(client.shutdown_session(), "shutdown")
    assert await bounded(server.process.wait(), "the server's exit") == 0


async def test_tcp_server_on_loopback_serves_one_editor_and_refuses_a_second(tmp_path: Path):
    async with tcp_server(tmp_path) as server:
        client = await server.editor()
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []

        # A second editor (or any local process) on the same port is not served: it would hear
        # the first editor's replies, code and all.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "workspace/symbol", "params": {"query": ""}}'
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        try:
            said = await bounded(reader.read(), "the refusal")
        except ConnectionResetError:  # closed with the request unread
            said = b""
        assert said == b""  # closed, nothing said
        writer.close()
        await server.logged("refused a second connection")
        # The first editor is still served.
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []
        await stop(client, server)


# Another local user connects before the editor does and tries to take the server over: its
# initialize names the victim's shell start-up file as the audit log.
INTRUDER = """
import json, socket, sys
port, target = int(sys.argv[1]), sys.argv[2]
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "capabilities": {}, "initializationOptions": {"auditPath": target}}}).encode()
with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
    s.sendall(b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
    try:
        said = s.recv(65536)
    except ConnectionResetError:
        said = b""
print(json.dumps({"said": said.decode("latin-1")}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="acting as a second local user needs root and setpriv (CI runs as root)",
)
async def test_another_local_user_is_refused_and_the_editor_still_served(tmp_path: Path):
    bashrc = tmp_path / "victim" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("export PATH=$HOME/bin:$PATH\n")
    async with tcp_server(tmp_path) as server:
        # As nobody, with the system's Python (the test's may sit in a folder nobody can read).
        intruder = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        intruder += ["/usr/bin/python3", "-c", INTRUDER, str(server.port), str(bashrc)]
        done = await asyncio.to_thread(
            subprocess.run, intruder, capture_output=True, text=True, timeout=120, check=True
        )
        assert json.loads(done.stdout) == {"said": ""}  # closed, nothing answered
        logged = await server.logged("refused a connection from")
        assert "it belongs to uid 65534, not to this server's user (uid 0)" in logged

        # The user's own editor, connecting next, is served as the first and only editor.
        client = await server.editor()
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []
        await stop(client, server)
    assert bashrc.read_text() == "export PATH=$HOME/bin:$PATH\n"


async def test_settings_that_name_paths_are_refused_over_tcp_unless_the_policy_allows(
    tmp_path: Path,
) -> None:
    named = tmp_path / "named-audit.jsonl"
    async with tcp_server(tmp_path / "home") as server:
        client = await server.editor(auditPath=str(named), context={"knowledgeBase": ["/etc"]})
        message = await bounded(Watch(client).message("connected over TCP"), "the refusal")
        assert message.type == types.MessageType.Error
        assert "auditPath is not accepted" in message.message
        assert "context.knowledgeBase is not accepted" in message.message
        # A suggestion is audited where the server's own settings say, not where the client said.
        doc = cursor_file("completion/limits.py")
        assert await bounded(complete(client, open_doc(client, doc, "python"), doc), "a completion")
        assert not named.exists()
        assert len(audit_lines(tmp_path / "home" / "audit" / "audit.jsonl")) == 1
        await stop(client, server)

    # Where the administrator allows it, the editor's path is taken.
    policy = tmp_path / "policy.toml"
    policy.write_text("[network]\ntcp_path_settings = true\n")
    async with tcp_server(tmp_path / "home2", policy) as server:
        client = await server.editor(auditPath=str(named))
        doc = cursor_file("completion/limits.py")
        assert await bounded(complete(client, open_doc(client, doc, "python"), doc), "a completion")
        assert len(audit_lines(named)) == 1
        assert not client.messages
        await stop(client, server)


async def test_tcp_server_refuses_a_non_loopback_address():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airgap_lsp",
        "serve",
        "--tcp",
        "--host",
        "0.0.0.0",
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"loopback only" in err
