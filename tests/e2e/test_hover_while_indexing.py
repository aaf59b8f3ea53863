"""A hover before the workspace index is built, end to end: the real server over stdio and a real
LSP client that holds back its answer to the server's `window/workDoneProgress/create`. The
server asks it before the scan reads a file, so while it is held the index is, for certain,
still being built: no timing decides it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from lsp_server.features.hover import STILL_INDEXING
from tests.conftest import cursor_file
from tests.e2e.test_inline_completion import accept_registrations

pytestmark = pytest.mark.e2e

SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
WAIT_S = 120.0  # start-up on a shared machine; a wait past it is a hang, not a retry


class HoldingClient(LanguageClient):
    """pytest-lsp's client, except that it answers `window/workDoneProgress/create` only once
    `release` is set (`asked` is set when the server has asked)."""

    def __init__(self) -> None:
        super().__init__(converter_factory=default_converter)
        self.release, self.asked = asyncio.Event(), asyncio.Event()


def holding_client() -> HoldingClient:
    client = HoldingClient()
    create = types.WINDOW_WORK_DONE_PROGRESS_CREATE
    register_lsp_features(client, {m: f for m, f in DEFAULT_CLIENT_FEATURES.items() if m != create})

    @client.feature(create)
    async def _create(c: HoldingClient, params: types.WorkDoneProgressCreateParams) -> None:
        c.progress_reports.setdefault(params.token, [])
        c.asked.set()
        await c.release.wait()

    return client


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, client_factory=holding_client))
async def client(lsp_client: HoldingClient):  # type: ignore[no-untyped-def]
    yield
    lsp_client.release.set()  # a test that failed while holding: the session can still end
    await lsp_client.shutdown_session()


def indexed(client: LanguageClient) -> bool:
    return any(
        isinstance(r, types.WorkDoneProgressEnd) and "indexed" in (r.message or "")
        for reports in client.progress_reports.values()
        for r in reports
    )


async def hover(client: LanguageClient, uri: str, position: types.Position) -> str:
    shown = await asyncio.wait_for(
        client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=position
            )
        ),
        WAIT_S,
    )
    assert shown is not None, f"no hover at {position} in {uri}"
    assert isinstance(shown.contents, types.MarkupContent)
    return shown.contents.value


async def test_a_hover_before_the_index_is_built_answers_from_the_open_document_and_says_so(
    client: HoldingClient, tmp_path: Path
) -> None:
    doc = cursor_file("hover/guidance.adb")
    workspace, elsewhere = tmp_path / "workspace", tmp_path / "elsewhere"
    # A file in the workspace, and one outside it that the index never takes (its function has
    # another name, so that the first file's, once in the index, cannot answer for it).
    texts = {workspace: doc.text, elsewhere: doc.text.replace("Rate", "Pace")}
    for folder, text in texts.items():
        folder.mkdir()
        (folder / "guidance.adb").write_text(text, encoding="utf-8")
    accept_registrations(client)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="workspace")],
            initialization_options={
                "auditPath": str(tmp_path / "audit.jsonl"),
                "hover": {"explain": False},  # the index's part only: no model needed
            },
        )
    )
    await asyncio.wait_for(client.asked.wait(), WAIT_S)  # indexing has begun, and waits for us
    opened = {}
    for folder, text in texts.items():
        uri = (folder / "guidance.adb").as_uri()
        opened[uri] = "Rate" if folder == workspace else "Pace"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="ada", version=1, text=text
                )
            )
        )
    where = types.Position(line=doc.line, character=doc.character)

    for uri, name in opened.items():
        shown = await hover(client, uri, where)
        # The declaration with its contract and comment, from the open document ...
        assert f"function {name} (Step : Integer) return Integer" in shown, shown
        assert "`Pre => Step in -100 .. 100`" in shown
        assert "The climb rate for one step, bounded by the airframe." in shown
        assert "guidance.adb:6" in shown
        # ... and that more may come once the index is built.
        assert shown.endswith(STILL_INDEXING), shown
    assert not indexed(client)

    client.release.set()
    while not indexed(client):
        await asyncio.wait_for(client.wait_for_notification(types.PROGRESS), WAIT_S)

    for uri, name in opened.items():  # the index is built: the same, and nothing about the index
        shown = await hover(client, uri, where)
        assert f"function {name} (Step" in shown and "guidance.adb:6" in shown, shown
        assert STILL_INDEXING not in shown
