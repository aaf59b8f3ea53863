"""A suggestion whose request went stale while its audit line was being written is never shown,
and the log says so: the line gets a not-accepted event, and the suggestion the editor does show
keeps its place.

The server is the real one over stdio, on the default model, with the test gate of faultgate.py
pausing one audit line until the test has sent what an editor sends meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from lsp_server.assist import NOT_SENT
from tests.conftest import CursorFile, cursor_file
from tests.e2e.test_inline_completion import audit_lines, open_doc, start
from tests.e2e.test_killed_server import GATED, WAIT_S, inline_params, served

# faultgate.py's second gate (importing it would start a server)
PAUSE = "airgap.test.pauseNextAuditLine"
PAUSED = "airgap/test/auditLinePaused"
RESUME = "airgap.test.resumeAuditLine"
EVENT = "airgap/test/auditEvent"

pytestmark = pytest.mark.e2e


async def command(client: LanguageClient, name: str) -> Any:
    params = types.ExecuteCommandParams(command=name)
    return await asyncio.wait_for(client.workspace_execute_command_async(params), WAIT_S)


async def event_for(client: LanguageClient, suggestion_id: str) -> Any:
    """The gate's word that an accept / not-accepted line for `suggestion_id` was written."""
    while (told := await client.wait_for_notification(EVENT)).id != suggestion_id:
        pass
    return told


def items(result: Any) -> list[str]:
    assert isinstance(result, types.InlineCompletionList), result
    return [str(i.insert_text) for i in result.items]


@contextlib.asynccontextmanager
async def gated(audit: Path) -> AsyncIterator[tuple[LanguageClient, CursorFile, str]]:
    """The gated server, started, with the sample Ada file open: the client, the file, its uri."""
    doc = cursor_file("completion/sensors.adb")
    async with served(GATED) as client:
        await asyncio.wait_for(start(client, audit), WAIT_S)
        yield client, doc, open_doc(client, doc, "ada")


async def paused_request(client: LanguageClient, doc: CursorFile) -> tuple[asyncio.Future, str]:
    """A completion whose model has answered, its audit line paused before it is written."""
    await command(client, PAUSE)
    paused = asyncio.ensure_future(client.wait_for_notification(PAUSED))
    request = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(doc), msg_id="first"
    )
    held = await asyncio.wait_for(paused, WAIT_S)
    return asyncio.wrap_future(request), held.id


async def test_a_newer_request_while_the_line_is_written_leaves_the_older_unshown(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    async with gated(audit) as (client, doc, uri):
        first, first_id = await paused_request(client, doc)

        # The editor asks again (the user typed and undid): that one is shown.
        second = items(
            await asyncio.wait_for(
                client.text_document_inline_completion_async(inline_params(doc)), WAIT_S
            )
        )
        assert second and second[0].strip(), second
        told = asyncio.ensure_future(event_for(client, first_id))
        await command(client, RESUME)
        with pytest.raises(JsonRpcException, match="superseded"):
            await asyncio.wait_for(first, WAIT_S)
        assert (await asyncio.wait_for(told, WAIT_S)).reason == NOT_SENT

        # The shown one is still the one awaiting a verdict: closing the file decides it.
        ids = [r["id"] for r in audit_lines(audit)]  # the second's line went first
        assert len(ids) == 2 and ids[1] == first_id, ids
        second_id = ids[0]
        closed = asyncio.ensure_future(event_for(client, second_id))
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        assert (await asyncio.wait_for(closed, WAIT_S)).reason == "document closed"

    events = audit_lines(audit, kind="not_accepted")
    assert [(e["id"], e["reason"]) for e in events] == [
        (first_id, NOT_SENT),
        (second_id, "document closed"),
    ]


async def test_a_request_the_editor_cancels_while_its_line_is_written_is_logged_unshown(
    tmp_path: Path,
):
    audit = tmp_path / "audit.jsonl"
    async with gated(audit) as (client, doc, uri):
        first, first_id = await paused_request(client, doc)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="first"))
        told = asyncio.ensure_future(event_for(client, first_id))
        await command(client, RESUME)
        assert (await asyncio.wait_for(told, WAIT_S)).reason == NOT_SENT
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(first, WAIT_S)

        # Nothing of it is left to decide: closing the file writes no line for it.
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        stats = await command(client, "airgap.completionStats")  # answered after the close
        finished = stats["generations_finished"] - stats["asked_again"]  # (withheld, asked again)
        assert (finished, stats["served_typed_on"]) == (1, 0)

    assert [r["id"] for r in audit_lines(audit)] == [first_id]
    events = audit_lines(audit, kind="not_accepted")
    assert [(e["id"], e["reason"]) for e in events] == [(first_id, NOT_SENT)]
