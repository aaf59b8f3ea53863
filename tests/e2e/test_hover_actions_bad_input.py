"""Hover and code actions on bad positions and bad data: a clear answer or a clear error, never a
crash. No model is needed for any of this (the configured one does not exist), so the server's
answers come from the tree and the index alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.test_hover_actions import WORKSPACE, Watch, actions_at, open_file, start

pytestmark = pytest.mark.e2e

EMOJI_ADA = "--  Höhe 😀 limits\nprocedure P is begin X := 1; end P;\n"


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "airgap_lsp", "serve"])
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


def open_text(client: LanguageClient, name: str, language_id: str, text: str) -> str:
    uri = (WORKSPACE / name).as_uri()  # never on disk: the editor's buffer only
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=text
            )
        )
    )
    return uri


async def hover(client: LanguageClient, uri: str, line: int, character: int) -> types.Hover | None:
    return await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
        )
    )


async def started(client: LanguageClient, tmp_path: Path) -> Watch:
    watch = await start(client, tmp_path / "audit.jsonl", model="no-such-model@1")
    await watch.until_status("error")
    return watch


async def test_positions_past_the_end_or_inside_a_surrogate_pair(
    client: LanguageClient, tmp_path: Path
):
    await started(client, tmp_path)
    uri = open_text(client, "scratch.adb", "ada", EMOJI_ADA)
    column_in_pair = EMOJI_ADA.split("\n")[0].index("😀") + 1  # UTF-16: between its two halves

    assert await hover(client, uri, 999, 999) is None
    assert await hover(client, uri, 0, column_in_pair) is None  # in a comment: no name there
    for line, character in ((999, 999), (0, column_in_pair), (1, 500)):
        here = types.Position(line=line, character=character)
        result = await client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=here, end=here),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert result is None or all(isinstance(a, types.CodeAction) for a in result)

    # A reversed range is read as the selection it spans.
    reversed_range = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=1, character=30), end=types.Position(line=1, character=0)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert reversed_range is not None
    # And the server still answers what it knows.
    real_uri, text = open_file(client, "src/autopilot.adb")
    line = text.split("\n").index(next(x for x in text.split("\n") if "Altitude.Clamp" in x))
    answer = await hover(client, real_uri, line, text.split("\n")[line].index("Clamp") + 1)
    assert answer is not None and isinstance(answer.contents, types.MarkupContent)
    assert "function Clamp" in answer.contents.value


async def test_a_document_without_a_grammar_and_unknown_documents(
    client: LanguageClient, tmp_path: Path
):
    await started(client, tmp_path)
    uri = open_text(client, "notes.txt", "plaintext", "Clamp the altitude.\n")

    assert await actions_at(client, uri, types.Position(line=0, character=1)) == {}
    # A word that the index declares, in plain text: the hover shows what the index knows.
    answer = await hover(client, uri, 0, 2)
    assert answer is None or isinstance(answer.contents, types.MarkupContent)
    # A document the editor never opened: nothing, not an error.
    never = (WORKSPACE / "src" / "altitude.ads").as_uri()
    assert await hover(client, never, 0, 0) is None


async def test_resolving_something_that_is_not_our_code_action_is_a_clear_error(
    client: LanguageClient, tmp_path: Path
):
    await started(client, tmp_path)
    for data in (None, {"action": "format_disk"}, {"action": "refactor", "uri": 3, "range": []}):
        with pytest.raises(JsonRpcInvalidParams, match="not an airgap-lsp code action"):
            await client.code_action_resolve_async(types.CodeAction(title="x", data=data))
