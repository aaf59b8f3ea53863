"""Two editors, two servers, one audit log: every suggestion has its line, the chain holds."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from audit.verify import verify_chain
from tests.conftest import cursor_file
from tests.e2e.test_inline_completion import audit_lines

pytestmark = pytest.mark.e2e


async def session(name: str, audit: Path, rounds: int) -> list[str]:
    """One editor: start a server, ask for `rounds` completions, shut down; the texts shown."""
    client = LanguageClient(name, "1")
    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve")
    shown: list[str] = []
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                client_info=types.ClientInfo(name=name, version="1"),
                initialization_options={"auditPath": str(audit), "maxTokensLine": 6},
            )
        )
        client.initialized(types.InitializedParams())
        doc = cursor_file("completion/sensors.adb")
        for n in range(rounds):
            uri = f"{doc.path.as_uri()}?{name}-{n}"  # a document per round: none replaces another
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="ada", version=1, text=doc.text
                    )
                )
            )
            result = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=doc.line, character=doc.character),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
            items = result.items if isinstance(result, types.InlineCompletionList) else result
            shown.extend(str(i.insert_text) for i in items or [])
        await client.shutdown_async(None)
        client.exit(None)
    except BaseException:
        if client._server is not None and client._server.returncode is None:  # noqa: SLF001
            client._server.kill()  # noqa: SLF001 - else stop() waits for a server never told to exit
        raise
    finally:
        await client.stop()
    return shown


async def test_two_servers_share_one_log(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"

    first, second = await asyncio.gather(
        session("editor-a", audit, 4), session("editor-b", audit, 4)
    )

    lines = audit_lines(audit)
    assert len(lines) == len(first) + len(second) and len(lines) >= 6
    clients = [r["client"]["name"] for r in lines]
    assert clients.count("editor-a") == len(first) and clients.count("editor-b") == len(second)
    result = verify_chain(audit)
    assert result.ok, result.reason
