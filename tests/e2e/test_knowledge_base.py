"""Knowledge-base folders named by a client's settings, in a real session over stdio: no link
leads out of them, a relative folder is refused, and reading a large one leaves the server
answering."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from tests.conftest import BABBLE_STORE, CURSOR
from tests.e2e.harness import bounded
from tests.e2e.test_context import sources, start_indexed
from tests.e2e.test_exclusions import at_cursor
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc

pytestmark = pytest.mark.e2e

TOKEN = f"tok_{secrets.token_hex(16)}"  # an API token in the server's environment
APP = (
    "import os\n\n\n"
    "def api_headers() -> dict[str, str]:\n"
    '    token = os.environ["AIRGAP_E2E_API_TOKEN"]\n'
    f'    return {{"Authorization": {CURSOR}\n'
)
NOTES = (
    "# API headers\n\n"
    "The Authorization header carries AIRGAP_E2E_API_TOKEN as a bearer token: api_headers\n"
    "returns the headers with the token from os.environ.\n"
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[LanguageClient]:
    """A server on the babble model, started in `tmp_path` with a token in its environment."""
    client = make_test_lsp_client()
    env = {
        **os.environ,
        "AIRGAP_LSP_MODEL_STORE": str(BABBLE_STORE),
        "AIRGAP_E2E_API_TOKEN": TOKEN,
    }
    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve", env=env, cwd=tmp_path)
    try:
        yield client
    finally:
        await bounded(client.shutdown_session(), "shutdown")


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text(APP, encoding="utf-8")
    return root


def knowledge_base(folder: Path) -> Path:
    folder.mkdir()
    (folder / "api.md").write_text(NOTES, encoding="utf-8")
    return folder


async def test_a_link_to_proc_self_environ_in_a_knowledge_base_puts_no_token_in_the_prompt(
    client: LanguageClient, tmp_path: Path, babble_model: str
) -> None:
    kb = knowledge_base(tmp_path / "kb")
    (kb / "env.md").symlink_to("/proc/self/environ")
    root, audit = workspace(tmp_path), tmp_path / "audit.jsonl"
    options = {"knowledgeBase": [str(kb)], "maxTokens": 4000}
    await bounded(start_indexed(client, audit, root, model=babble_model, context=options), "start")
    doc = at_cursor(root / "app.py")
    uri = open_doc(client, doc, "python")

    await bounded(complete(client, uri, doc), "a completion")

    rec = audit_lines(audit)[-1]
    assert "kb/api.md" in sources(rec)  # the knowledge base reaches the prompt here
    assert "kb/env.md" not in sources(rec)
    assert TOKEN not in rec["prompt"] and TOKEN not in audit.read_text(encoding="utf-8")


async def test_a_relative_knowledge_base_folder_is_refused_and_the_last_good_one_kept(
    client: LanguageClient, tmp_path: Path, babble_model: str
) -> None:
    kb = knowledge_base(tmp_path / "kb")
    # Beside the server's working folder, where a relative `notes` would be read from.
    (knowledge_base(tmp_path / "notes") / "api.md").write_text(NOTES + "\nNOTES-FROM-CWD\n")
    root, audit = workspace(tmp_path), tmp_path / "audit.jsonl"
    options = {"knowledgeBase": [str(kb)], "maxTokens": 4000}
    await bounded(start_indexed(client, audit, root, model=babble_model, context=options), "start")
    doc = at_cursor(root / "app.py")
    uri = open_doc(client, doc, "python")

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"context": {"knowledgeBase": ["notes"]}})
    )
    await bounded(complete(client, uri, doc), "a completion")  # after the settings, in order

    refused = [m for m in client.messages if "knowledgeBase" in m.message]
    assert len(refused) == 1 and refused[0].type == types.MessageType.Error
    assert "absolute" in refused[0].message and "'notes'" in refused[0].message
    rec = audit_lines(audit)[-1]
    assert "kb/api.md" in sources(rec) and "NOTES-FROM-CWD" not in rec["prompt"]


def progress(client: LanguageClient, title: str) -> list[object]:
    """The reports of the work-done progress whose title holds `title` (empty: not begun)."""
    for reports in client.progress_reports.values():
        first = reports[0] if reports else None
        if isinstance(first, types.WorkDoneProgressBegin) and title in first.title:
            return list(reports)
    return []


async def until(client: LanguageClient, done: Callable[[], bool]) -> None:
    while not done():
        await client.wait_for_notification(types.PROGRESS)


def ended(reports: list[object]) -> types.WorkDoneProgressEnd | None:
    return next((r for r in reports if isinstance(r, types.WorkDoneProgressEnd)), None)


async def test_a_request_is_answered_while_a_large_knowledge_base_is_read(
    client: LanguageClient, tmp_path: Path, babble_model: str
) -> None:
    """More than the knowledge base's bounds (16 MB of text): the reading stops at them, and a
    request sent after it began is answered before it ends."""
    kb = tmp_path / "large"
    kb.mkdir()
    text = "# Standard\n\n" + "Clamp the altitude before the guidance loop reads it.\n" * 160
    for n in range(2_000):
        (kb / f"rule{n:04}.md").write_text(text, encoding="utf-8")
    root, audit = workspace(tmp_path), tmp_path / "audit.jsonl"
    await bounded(start_indexed(client, audit, root, model=babble_model), "start-up", 180)
    doc = at_cursor(root / "app.py")
    uri = open_doc(client, doc, "python")

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"context": {"knowledgeBase": [str(kb)]}})
    )
    title = "knowledge base"
    await bounded(until(client, lambda: bool(progress(client, title))), "its progress begins")
    symbols = await bounded(
        client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        "documentSymbol while the knowledge base is read",
    )

    assert symbols and ended(progress(client, title)) is None, "answered only after the reading"
    await bounded(until(client, lambda: ended(progress(client, title)) is not None), "its end")
    end = ended(progress(client, title))
    assert end is not None and "limit of 16,000,000 bytes" in (end.message or ""), end
