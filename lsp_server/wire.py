"""The LSP base protocol as airgap-lsp reads it: framed messages in, and an answer for every
request, even a malformed one.

pygls's own loop hands a message it cannot decode to an error handler that no longer knows which
request it was, so the editor waits for an answer that never comes. Here a message that is not
UTF-8, not JSON, not JSON-RPC 2.0, or whose params do not fit its method gets the JSON-RPC error
it calls for, under its own id when it has one. A stray line between messages is skipped and the
next `Content-Length` header found again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Awaitable
from typing import Any, Protocol

from cattrs import ClassValidationError, transform_error
from lsprotocol.types import WINDOW_LOG_MESSAGE, LogMessageParams, MessageType
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)
from pygls.protocol import JsonRPCProtocol

log = logging.getLogger("airgap_lsp.wire")

# A header glued to the end of a stray line (a body sent without a frame) is still found.
CONTENT_LENGTH = re.compile(rb"Content-Length:[ \t]*(\d+)[ \t]*\r?\n?$", re.IGNORECASE)
HEADER = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:.*\r?\n?$")
MAX_MESSAGE = 1 << 30  # larger bodies are read and dropped, so the next message is still found
CHUNK = 1 << 20


class Reader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...
    def readexactly(self, n: int) -> Awaitable[bytes]: ...


async def read_messages(
    stop_event: threading.Event, reader: Reader, protocol: JsonRPCProtocol
) -> None:
    """Read framed messages until the stream ends or the server stops, and handle each."""
    length = -1
    while not stop_event.is_set():
        line = await reader.readline()
        if not line:
            break
        if length < 0:
            found = CONTENT_LENGTH.search(line)
            if found:
                length = int(found.group(1))
                if found.start():
                    _skipped(protocol, found.start())
            elif line.strip() and not HEADER.match(line):
                _skipped(protocol, len(line))
            continue
        if line.strip():
            continue  # another header (Content-Type): nothing to do with it
        size, length = length, -1
        if size > MAX_MESSAGE:
            await _drop(reader, size)
            _complain(protocol, f"airgap-lsp dropped a message of {size} bytes, over {MAX_MESSAGE}")
            continue
        body = await reader.readexactly(size) if size else b""
        if len(body) < size:
            break  # the stream ended inside a message
        receive(protocol, body)


async def _drop(reader: Reader, size: int) -> None:
    while size > 0:
        got = await reader.readexactly(min(size, CHUNK))
        if not got:
            return
        size -= len(got)


def receive(protocol: JsonRPCProtocol, body: bytes) -> None:
    """Decode one message body and hand it on, or answer what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(
            protocol,
            body.decode("utf-8", "replace"),
            JsonRpcParseError(f"the message is not valid UTF-8 (byte {exc.start})"),
        )
        return
    try:
        message = json.loads(text, object_hook=protocol.structure_message)
    except json.JSONDecodeError as exc:
        _refuse(protocol, None, JsonRpcParseError(f"the message is not valid JSON ({exc})"))
        return
    except JsonRpcException as exc:
        reason = exc.__cause__ or exc
        _refuse(protocol, text, JsonRpcInvalidParams(f"invalid params: {_first_line(reason)}"))
        return
    if getattr(message, "jsonrpc", None) != JsonRPCProtocol.VERSION:
        _refuse(protocol, text, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message"))
        return
    protocol.handle_message(message)


def _refuse(protocol: JsonRPCProtocol, text: str | None, error: JsonRpcException) -> None:
    """Answer a request under its id; fail a pending reply; report anything else."""
    doc: Any = None
    if text is not None:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
    msg_id = doc.get("id") if isinstance(doc, dict) else None
    method = doc.get("method") if isinstance(doc, dict) else None
    if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
        msg_id = None
    what = f"{method!r}" if isinstance(method, str) else "a message"
    error.message = f"airgap-lsp could not read {what}: {error.message}"
    if msg_id is not None and method is None and msg_id in protocol._request_futures:
        log.warning("the reply to request %s was malformed: %s", msg_id, error.message)
        protocol._handle_response(msg_id, error=error.to_response_error())
    elif msg_id is not None:
        log.warning("request %s refused: %s", msg_id, error.message)
        protocol._send_response(msg_id, error=error.to_response_error())
    else:
        _complain(protocol, error.message)


def _skipped(protocol: JsonRPCProtocol, count: int) -> None:
    _complain(protocol, f"airgap-lsp skipped {count} bytes that were not part of a framed message")


def _complain(protocol: JsonRPCProtocol, message: str) -> None:
    """A broken message nobody waits for: the server's log and the editor's output channel."""
    log.error("%s", message)
    protocol.notify(
        WINDOW_LOG_MESSAGE,
        LogMessageParams(type=MessageType.Error, message=message),
    )


def _first_line(exc: BaseException) -> str:
    """What cattrs found wrong (`expected int @ $.params.position.line`), else the first line."""
    if isinstance(exc, ClassValidationError):
        return "; ".join(transform_error(exc, path="$")[:3])
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
