"""`airgap-lsp serve --tcp` listens on loopback only and answers like the stdio server."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

pytestmark = pytest.mark.e2e


async def test_tcp_server_on_loopback_serves_one_editor_and_refuses_a_second(tmp_path: Path):
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lsp_server",
        "serve",
        "--tcp",
        "--port",
        "0",
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        port = None
        while port is None:  # the server logs its address once it listens
            line = (await asyncio.wait_for(server.stderr.readline(), 60)).decode()
            assert line, "the server exited before listening"
            if m := re.search(r"Serving on \('127\.0\.0\.1', (\d+)\)", line):
                port = int(m.group(1))
        client = LanguageClient("tcp-test", "0")
        await client.start_tcp("127.0.0.1", port)
        reply = await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options={"auditPath": str(tmp_path / "audit.jsonl")},
            )
        )
        assert reply.capabilities.inline_completion_provider is not None

        # A second editor (or any local process) on the same port is not served: it would hear
        # the first editor's replies, code and all.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "workspace/symbol", "params": {"query": ""}}'
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        try:
            said = await asyncio.wait_for(reader.read(), 60)
        except ConnectionResetError:  # closed with the request unread
            said = b""
        assert said == b""  # closed, nothing said
        writer.close()
        logged = ""
        while "refused a second connection" not in logged:
            line = (await asyncio.wait_for(server.stderr.readline(), 60)).decode()
            assert line, "the server exited"
            logged = line
        # The first editor is still served.
        assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) == []

        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        assert await asyncio.wait_for(server.wait(), 60) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_tcp_server_refuses_a_non_loopback_address():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lsp_server",
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
