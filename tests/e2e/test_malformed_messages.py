"""Malformed JSON-RPC on the wire: every request is answered with its error, nothing hangs, and the
server goes on serving.

A real LSP client cannot send broken bytes, so this test writes the frames itself to the real
server over stdio.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
WAIT = 60.0  # seconds: a bound on every read, so a missing answer fails instead of hanging


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def request(msg_id: int | str, method: str, params: Any = None) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = params
    return frame(json.dumps(msg).encode())


class Wire:
    """The server's stdin and stdout, read as framed messages."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []  # everything the server sent, in order

    async def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while line := await self.proc.stdout.readline():
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif not line.strip():
                break
        assert length, "the server closed its output"
        msg = json.loads(await self.proc.stdout.readexactly(length))
        self.seen.append(msg)
        return msg

    async def reply(self, msg_id: int | str) -> dict[str, Any]:
        """The response to one request (notifications on the way are kept in `seen`)."""

        async def until() -> dict[str, Any]:
            while True:
                msg = await self._read()
                if msg.get("id") == msg_id and "method" not in msg:
                    return msg

        return await asyncio.wait_for(until(), WAIT)

    async def logged(self, containing: str) -> str:
        """A `window/logMessage` error the server sent for a message nobody waits on."""

        def found() -> str | None:
            for m in self.seen:
                if m.get("method") == "window/logMessage" and containing in m["params"]["message"]:
                    assert m["params"]["type"] == 1  # Error
                    return str(m["params"]["message"])
            return None

        async def until() -> str:
            while (text := found()) is None:
                await self._read()
            return text

        return await asyncio.wait_for(until(), WAIT)


@pytest.fixture
async def wire(tmp_path):  # type: ignore[no-untyped-def]
    proc = await asyncio.create_subprocess_exec(
        *SERVER,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    w = Wire(proc)
    # No model: these messages are about the wire, and no request here needs one.
    options = {"auditPath": str(tmp_path / "audit.jsonl"), "model": "no-model-here"}
    await w.send(request(1, "initialize", {"capabilities": {}, "initializationOptions": options}))
    assert "capabilities" in (await w.reply(1))["result"]
    await w.send(frame(b'{"jsonrpc": "2.0", "method": "initialized", "params": {}}'))
    yield w
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def error_of(msg: dict[str, Any]) -> tuple[int, str]:
    assert "error" in msg, f"expected an error, got {msg}"
    return msg["error"]["code"], msg["error"]["message"]


async def test_each_malformed_request_gets_its_own_error(wire: Wire):
    await wire.send(request(2, "textDocument/hover", {"textDocument": 5}))
    await wire.send(request(3, "textDocument/hover"))
    await wire.send(
        frame(
            b'{"jsonrpc": "2.0", "id": 4, "method": "textDocument/hover", "params": '
            b'{"textDocument": {"uri": "file:///tmp/\xff\xfe.adb"}, '
            b'"position": {"line": 0, "character": 0}}}'
        )
    )
    await wire.send(frame(b'{"id": 5}'))
    await wire.send(request(6, "airgap/noSuchMethod", {}))
    await wire.send(request("seven", "textDocument/hover", {"position": {"line": "x"}}))

    code, text = error_of(await wire.reply(2))
    assert code == -32602 and "textDocument/hover" in text
    assert "$.params.position" in text  # says what is missing ...
    assert "$.params.text_document" in text  # ... and what has the wrong type
    code, text = error_of(await wire.reply(3))
    assert code == -32602 and "required field missing @ $.params" in text
    code, text = error_of(await wire.reply(4))
    assert code == -32700 and "not valid UTF-8" in text
    code, text = error_of(await wire.reply(5))
    assert code == -32600 and "not a JSON-RPC 2.0 message" in text
    code, text = error_of(await wire.reply(6))
    assert code == -32601 and "airgap/noSuchMethod" in text
    code, _ = error_of(await wire.reply("seven"))
    assert code == -32602


async def test_broken_frames_are_reported_and_the_next_message_is_read(wire: Wire):
    await wire.send(frame(b"{this is not json"))
    assert "not valid JSON" in await wire.logged("not valid JSON")
    await wire.send(frame(b"[1, 2, 3]"))
    assert "not a JSON-RPC 2.0 message" in await wire.logged("JSON-RPC 2.0")
    # A body sent with no header at all runs into the next message's header ...
    await wire.send(b'{"jsonrpc": "2.0", "id": 8, "method": "shutdown"}')
    await wire.send(request(9, "workspace/symbol", {"query": "Clamp"}))
    # ... which is still found: the stray bytes are reported and request 9 is answered.
    assert "skipped" in await wire.logged("skipped")
    assert (await wire.reply(9)).get("result") == []
    assert not any(m.get("id") == 8 for m in wire.seen)  # the unframed one was not run


async def test_after_all_that_the_server_shuts_down_cleanly(wire: Wire):
    await wire.send(frame(b"\x00\x01garbage"))
    await wire.send(request(10, "textDocument/hover", {"textDocument": 5}))
    assert error_of(await wire.reply(10))[0] == -32602
    await wire.send(request(11, "shutdown"))
    assert (await wire.reply(11)).get("result") is None
    await wire.send(frame(b'{"jsonrpc": "2.0", "method": "exit"}'))
    assert await asyncio.wait_for(wire.proc.wait(), WAIT) == 0
