"""The server's text of a document is the editor's, whatever the edits: what a completion's prompt
holds shows it (the babble model's prompt is the text before the cursor, with no cross-file context
and no length cut)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import BABBLE_STORE
from tests.e2e.harness import audit_id, completion_items, completion_params
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import actions_at
from tests.e2e.test_inline_completion import audit_lines

pytestmark = pytest.mark.e2e


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "airgap_lsp", "serve"],
        server_env={**os.environ, "AIRGAP_LSP_MODEL_STORE": str(BABBLE_STORE)},
    )
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def start(client: LanguageClient, tmp_path: Path, model: str) -> Path:
    audit = tmp_path / "audit.jsonl"
    await start_indexed(
        client,
        audit,
        tmp_path,
        model=model,
        maxTokensLine=4,
        maxPrefixChars=200_000,
        context={"crossFile": False},
    )
    return audit


def open_text(client: LanguageClient, uri: str, language_id: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=text
            )
        )
    )


def edit(client: LanguageClient, uri: str, version: int, *changes: tuple[int, int, int, int, str]):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=a, character=b),
                        end=types.Position(line=c, character=d),
                    ),
                    text=text,
                )
                for a, b, c, d, text in changes
            ],
        )
    )


async def test_edits_after_a_form_feed_and_past_the_last_lines_end_land_where_the_editor_put_them(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = await start(client, tmp_path, babble_model)
    uri = (tmp_path / "notes.txt").as_uri()
    # A form feed is no line end in LSP (Python sources hold them between sections).
    open_text(client, uri, "plaintext", "def f(x):\x0c    return x\nvalue = 1")

    # The end of line 0, after its form feed; then from column 5 of the last line to past its end.
    edit(client, uri, 2, (0, 22, 0, 22, "  # ff"), (1, 5, 1, 12, ""))
    items = completion_items(
        await client.text_document_inline_completion_async(completion_params(uri, 1, 5))
    )

    assert len(items) == 1, "the babble model always writes something here"
    rec = audit_lines(audit)[-1]
    assert rec["id"] == audit_id(items[0])
    # The text before the cursor: the prompt, then its last token healed off and forced.
    healed = rec["prompt"] + rec["decoding"]["forced_prefix"]
    assert healed == "def f(x):\x0c    return x  # ff\nvalue"


async def test_a_completion_for_a_closed_document_is_no_suggestion(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = await start(client, tmp_path, babble_model)
    uri = (tmp_path / "scratch.py").as_uri()  # an editor buffer, never saved
    open_text(client, uri, "python", "x = 1\n")
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )

    result = await client.text_document_inline_completion_async(completion_params(uri, 0, 5))

    assert completion_items(result) == []
    assert audit_lines(audit, kind="inline_completion") == []


async def test_a_completion_at_the_start_of_a_document_is_no_suggestion_not_an_error(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = await start(client, tmp_path, babble_model)
    uris = [(tmp_path / name).as_uri() for name in ("empty.py", "notes.txt")]
    open_text(client, uris[0], "python", "")
    open_text(client, uris[1], "plaintext", "Clamp the altitude.\n")

    # Nothing before the cursor: a model without fill-in-the-middle has nothing to go on.
    for uri in uris:
        result = await client.text_document_inline_completion_async(completion_params(uri, 0, 0))
        assert completion_items(result) == []
    assert audit_lines(audit, kind="inline_completion") == []
    # Further on, the same document completes as usual.
    result = await client.text_document_inline_completion_async(completion_params(uris[1], 0, 5))
    assert len(completion_items(result)) == 1


async def test_a_refactor_of_crlf_lines_replaces_their_text_and_leaves_their_line_ends(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = await start(client, tmp_path, babble_model)
    uri = (tmp_path / "limits.py").as_uri()
    open_text(client, uri, "python", "def clamp(value, low):\r\n    return max(value, low)\r\n")
    actions = await actions_at(client, uri, types.Position(line=1, character=6))

    await client.code_action_resolve_async(actions["Suggest a refactor"])

    rec = audit_lines(audit, kind="code_action.refactor")[-1]
    # The function's lines up to the end of the last one's text (26 columns): its "\r\n" stays,
    # where a column past it would have taken the "\r" away in an editor that does not clamp.
    assert rec["result"]["range"] == [0, 0, 1, 26]


async def test_an_edit_the_server_cannot_apply_stops_suggestions_until_the_file_is_reopened(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = await start(client, tmp_path, babble_model)
    uri = (tmp_path / "limits.txt").as_uri()  # plain text: no parse check on the babble
    open_text(client, uri, "plaintext", "low = 1\nhigh = 2\n")

    edit(client, uri, 2, (1, 4, 0, 2, "x"))  # a range that ends before it starts

    async def told() -> None:
        while not any("could not apply an edit" in m.message for m in client.messages):
            await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)

    await asyncio.wait_for(told(), 60)  # the user is told, or the test fails

    # Its text is now unknown: no suggestion rather than one placed on stale text.
    result = await client.text_document_inline_completion_async(completion_params(uri, 1, 4))
    assert completion_items(result) == []
    assert audit_lines(audit, kind="inline_completion") == []
    # Reopened, it completes from the text the editor sends.
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    open_text(client, uri, "plaintext", "low = 1\nhigh = 22\n")
    result = await client.text_document_inline_completion_async(completion_params(uri, 1, 9))
    assert len(completion_items(result)) == 1
    rec = audit_lines(audit)[-1]
    assert rec["prompt"] + rec["decoding"]["forced_prefix"] == "low = 1\nhigh = 22"
