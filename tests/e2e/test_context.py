"""Cross-file context end to end: a name defined only in another file reaches the prompt."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import FIXTURES, CursorFile, cursor_file
from tests.e2e.test_inline_completion import (
    accept_registrations,
    audit_lines,
    complete,
    open_doc,
)

WORKSPACE = FIXTURES / "context"

pytestmark = pytest.mark.e2e


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "airgap_lsp", "serve"])
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def start_indexed(
    client: LanguageClient,
    audit: Path,
    workspace: Path = WORKSPACE,
    client_info: types.ClientInfo | None = None,
    **options: object,
) -> list[types.Registration]:
    """Initialize on a fixture workspace and wait for the index's progress to end."""
    registered = accept_registrations(client)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            client_info=client_info,
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
            initialization_options={"auditPath": str(audit), **options},
        )
    )
    await indexed(client)
    return registered


async def indexed(client: LanguageClient, times: int = 1) -> None:
    """Until the server has said `times` times that it finished indexing the workspace."""
    while (
        sum(
            isinstance(r, types.WorkDoneProgressEnd) and "indexed" in (r.message or "")
            for rs in client.progress_reports.values()
            for r in rs
        )
        < times
    ):
        await client.wait_for_notification(types.PROGRESS)


def sources(record: dict) -> dict[str, dict]:
    return {s["path"]: s for s in record["context_sources"]}


async def test_an_ada_package_spec_from_another_file_is_in_the_prompt(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start_indexed(client, audit, context={"knowledgeBase": [str(WORKSPACE / "docs")]})
    doc = cursor_file("context/src/autopilot.adb")
    uri = open_doc(client, doc, "ada")

    await complete(client, uri, doc)

    rec = audit_lines(audit)[-1]
    prompt = rec["prompt"]
    # The withed unit's spec, which only src/flight_limits.ads holds, is in the prompt ...
    assert "function Clamp_Altitude (Altitude : Feet) return Feet" in prompt
    assert "Ceiling_Feet : constant Feet := 41_000;" in prompt
    spec = sources(rec)["src/flight_limits.ads"]
    lines = (WORKSPACE / "src/flight_limits.ads").read_text().split("\n")
    text = "\n".join(lines[spec["lines"][0] : spec["lines"][1] + 1]).rstrip()
    assert hashlib.sha256(text.encode()).hexdigest() == spec["sha256"]
    assert text in prompt
    # ... and so is the coding standard's passage on altitudes, from the knowledge base.
    assert "docs/coding-standard.md" in sources(rec)
    assert "goes through Flight_Limits.Clamp_Altitude" in prompt
    # Excluded and ignored files never enter a prompt, though they match the names used here.
    assert (WORKSPACE / "generated" / "flight_limits_old.ads").is_file()
    assert "IGNORED-BY-GIT" not in prompt
    assert (WORKSPACE / "src" / "secrets.ads").is_file()
    assert "never-in-a-prompt" not in prompt
    assert not [p for p in sources(rec) if "secret" in p or "generated" in p]
    # The current file comes last, under its own path, right before the cursor.
    assert prompt.index("src/flight_limits.ads") < prompt.index("src/autopilot.adb")


async def test_an_unsaved_edit_of_an_open_spec_is_the_context_until_it_is_closed(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start_indexed(client, audit)
    spec = WORKSPACE / "src" / "flight_limits.ads"
    on_disk = spec.read_text()
    edited = on_disk.replace("return Feet\n", "return Feet -- Clamped_Unsaved\n", 1)
    assert edited != on_disk
    spec_uri = spec.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=spec_uri, language_id="ada", version=1, text=on_disk
            )
        )
    )
    whole = types.Range(
        start=types.Position(line=0, character=0),
        end=types.Position(line=on_disk.count("\n"), character=0),
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=spec_uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(range=whole, text=edited)],
        )
    )
    doc = cursor_file("context/src/autopilot.adb")
    uri = open_doc(client, doc, "ada")

    await complete(client, uri, doc)
    assert "Clamped_Unsaved" in audit_lines(audit)[-1]["prompt"]  # the editor's text, not disk's

    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=spec_uri))
    )
    doc = replace(doc, text=doc.text + "\n")  # another prompt: not the typed-on rest
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=doc.text)],
        )
    )
    await complete(client, uri, doc)
    prompt = audit_lines(audit)[-1]["prompt"]
    assert "function Clamp_Altitude (Altitude : Feet) return Feet" in prompt
    assert "Clamped_Unsaved" not in prompt  # closed unsaved: the index is back to the disk


async def test_a_vhdl_package_used_from_work_is_in_the_prompt(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start_indexed(client, audit)
    doc = cursor_file("context/rtl/uart_tx.vhd")
    uri = open_doc(client, doc, "vhdl")

    await complete(client, uri, doc)

    rec = audit_lines(audit)[-1]
    assert "rtl/util_pkg.vhd" in sources(rec)
    assert "function parity_of (data : std_logic_vector) return std_logic;" in rec["prompt"]


async def test_cross_file_context_can_be_switched_off(client: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    await start_indexed(client, audit, context={"crossFile": False})
    doc = cursor_file("context/src/autopilot.adb")
    uri = open_doc(client, doc, "ada")

    await complete(client, uri, doc)

    rec = audit_lines(audit)[-1]
    assert rec["context_sources"] == []
    assert "Ceiling_Feet" not in rec["prompt"]


async def test_symbols_come_from_the_index(client: LanguageClient, tmp_path: Path):
    registered = await start_indexed(client, tmp_path / "audit.jsonl")
    # The server asked the editor to report file changes, so the index follows the disk.
    assert [r.method for r in registered] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="clamp_alt"))
    names = {
        (s.name, Path(s.location.uri).name if hasattr(s.location, "uri") else "")
        for s in found or []
    }
    assert ("Clamp_Altitude", "flight_limits.ads") in {(n, f.split("/")[-1]) for n, f in names}
    assert not [n for n in names if "old" in n[1]], "ignored files are not indexed"

    doc = cursor_file("context/src/autopilot.adb")
    uri = open_doc(client, doc, "ada")
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    flat = []
    stack = list(symbols or [])
    while stack:
        s = stack.pop()
        flat.append(s.name)
        stack.extend(getattr(s, "children", None) or [])
    assert "Set_Target" in flat


async def test_a_new_line_keeps_the_context_and_the_prompts_start_is_not_read_again(
    client: LanguageClient, tmp_path: Path
):
    """A line written below a suggestion, and asked again on the next: the context chosen for
    the place is kept, so the engine reads only what the line added. With `keepLines` 0 the same
    request gets the context chosen afresh for the moved lines, which changes it."""
    from tests.unit.test_similar import WROTE, top_vhd, unit

    ws = tmp_path / "ws"
    (ws / "rtl").mkdir(parents=True)
    for name, signal in (("uart_tx", "tx_shift"), ("uart_rx", "rx_sample"), ("fifo", "wr_pointer")):
        (ws / "rtl" / f"{name}.vhd").write_text(unit(name, signal))
    audit = tmp_path / "audit.jsonl"
    await start_indexed(client, audit, workspace=ws)
    top = ws / "rtl" / "top.vhd"
    first = CursorFile(path=top, text=top_vhd(""), line=5, character=0)
    uri = open_doc(client, first, "vhdl")
    await complete(client, uri, first)
    later = CursorFile(path=top, text=top_vhd(WROTE), line=6, character=0)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=later.text)],
        )
    )
    await complete(client, uri, later)
    before, kept = audit_lines(audit)[-2:]
    assert kept["context_sources"] == before["context_sources"]
    assert before["context_sources"][-1]["path"] == "rtl/uart_rx.vhd"
    # The prompt is the same up to the current file's lines, and that start was not read again.
    start = kept["prompt"].index("rtl/top.vhd")
    assert kept["prompt"][:start] == before["prompt"][:start]
    assert kept["timings"]["reused_prompt_tokens"] >= 0.5 * kept["timings"]["prompt_tokens"]

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"context": {"keepLines": 0}})
    )
    again = replace(later, text=later.text + "\n")  # another request, not the suggestion's rest
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=again.text)],
        )
    )
    await complete(client, uri, again)
    fresh = audit_lines(audit)[-1]
    assert fresh["context_sources"] != before["context_sources"]
    assert fresh["context_sources"][-1] == before["context_sources"][-1]  # the best: the same
