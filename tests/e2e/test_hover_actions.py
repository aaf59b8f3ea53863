"""Hover explanations and code actions end to end: the real server over stdio, a real LSP client,
the embedded default model, the fixture workspace in tests/fixtures/actions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from context.languages import for_path
from context.symbols import definitions
from context.units import syntax_errors
from tests.conftest import FIXTURES
from tests.e2e.test_context import start_indexed
from tests.e2e.test_inline_completion import audit_lines

WORKSPACE = FIXTURES / "actions"
SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]

pytestmark = pytest.mark.e2e


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


def _as_dict(params: Any) -> dict[str, Any]:
    if isinstance(params, dict):
        return params
    if hasattr(params, "_asdict"):
        return dict(params._asdict())
    return dict(vars(params))


class Watch:
    """What the server tells the editor besides replies: its `airgap/status` and messages."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.status: list[dict[str, Any]] = []

        @client.feature("airgap/status")
        def _status(_c: LanguageClient, params: Any) -> None:
            self.status.append(_as_dict(params))

    async def until_status(self, *states: str) -> dict[str, Any]:
        while not any(s["state"] in states for s in self.status):
            await self.client.wait_for_notification("airgap/status")
        return next(s for s in self.status if s["state"] in states)

    async def model_ready(self) -> dict[str, Any]:
        status = await self.until_status("ready", "error")
        assert status["state"] == "ready", f"the model did not load: {status}"
        return status

    async def message(self, containing: str) -> types.ShowMessageParams:
        while not any(containing in m.message for m in self.client.messages):
            await self.client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
        return next(m for m in self.client.messages if containing in m.message)


async def start(client: LanguageClient, audit: Path, **options: object) -> Watch:
    """Initialize on the fixture workspace; wait for the index. `Watch` follows the model."""
    watch = Watch(client)
    await start_indexed(client, audit, WORKSPACE, **options)
    return watch


def open_file(client: LanguageClient, relative: str) -> tuple[str, str]:
    path = WORKSPACE / relative
    text = path.read_text(encoding="utf-8")
    language = for_path(path)
    assert language is not None
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id=language.name, version=1, text=text
            )
        )
    )
    return path.as_uri(), text


def position_of(text: str, needle: str, offset: int = 0) -> types.Position:
    at = text.index(needle) + offset
    line = text.count("\n", 0, at)
    return types.Position(line=line, character=at - (text.rfind("\n", 0, at) + 1))


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """The text with the edits applied (ASCII fixtures: columns are characters)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character))[::-1]:
        a = starts[edit.range.start.line] + edit.range.start.character
        b = starts[edit.range.end.line] + edit.range.end.character
        text = text[:a] + edit.new_text + text[b:]
    return text


def parse_errors(relative: str, text: str) -> int:
    language = for_path(relative)
    assert language is not None
    return len(syntax_errors(language.parser().parse(text.encode())))


async def actions_at(
    client: LanguageClient, uri: str, position: types.Position
) -> dict[str, types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    found = {}
    for action in result or []:
        assert isinstance(action, types.CodeAction)
        found[action.title.split(" for ")[0]] = action
    return found


async def test_hover_shows_the_declaration_from_another_file_then_an_explanation(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    # No time budget to speak of: this test is about what the hover holds, on a shared machine.
    watch = await start(client, audit, hover={"timeBudgetMs": 120_000})
    ready = await watch.model_ready()
    uri, text = open_file(client, "src/autopilot.adb")
    where = position_of(text, "Clamp (Requested)", 2)

    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=where)
    )

    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    shown = hover.contents.value
    # What the index knows: the declaration in the spec, its contract, its comment, its place.
    assert "function Clamp (Requested : Feet) return Feet" in shown
    assert "Post => Clamp'Result in Floor .. Ceiling" in shown
    assert "held inside the flight envelope" in shown
    assert "src/altitude.ads:9" in shown
    # Then the model's part, signed with the model and the audit id of its line.
    index_part, generated = shown.split("\n\n---\n\n")
    lines = audit_lines(audit, kind="hover")
    assert len(lines) == 1
    rec = lines[0]
    assert rec["text"].strip() and rec["text"].strip() in generated
    assert f"{ready['model']}@{ready['version']}" in generated and rec["id"] in generated
    assert rec["context_sources"][0]["path"] == "src/altitude.ads"
    assert "function Clamp" in rec["prompt"]
    assert hover.range == types.Range(
        start=types.Position(line=where.line, character=where.character - 2),
        end=types.Position(line=where.line, character=where.character + 3),
    )

    again = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=where)
    )
    # The cache: the same explanation and id, and no second generation in the log.
    assert again is not None and isinstance(again.contents, types.MarkupContent)
    assert again.contents.value == shown
    assert len(audit_lines(audit, kind="hover")) == 1


async def test_hover_without_a_model_shows_what_the_index_knows_and_why(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit, model="no-such-model@1")
    await watch.until_status("error")
    uri, text = open_file(client, "src/autopilot.adb")

    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(text, "Clamp (Requested)"),
        )
    )

    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "function Clamp (Requested : Feet) return Feet" in hover.contents.value
    assert "No explanation: the model no-such-model@1 could not be loaded" in hover.contents.value
    assert audit_lines(audit, kind=None) == []


async def test_code_actions_are_listed_without_a_model(client: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit, model="no-such-model@1")
    await watch.until_status("error")
    uri, text = open_file(client, "src/altitude.ads")

    on_climb = await actions_at(client, uri, position_of(text, "Climb"))
    on_clamp = await actions_at(client, uri, position_of(text, "Clamp"))

    assert set(on_climb) == {"Suggest SPARK contracts", "Suggest a refactor", "Explain this code"}
    assert on_climb["Suggest SPARK contracts"].title == "Suggest SPARK contracts for Climb"
    # Clamp has a Post but no Global and no Pre: contracts are still offered for it.
    assert "Suggest SPARK contracts" in on_clamp
    assert all(a.edit is None and a.command is None for a in on_climb.values())
    assert audit_lines(audit, kind=None) == []


async def test_suggest_a_refactor_returns_an_edit_that_applies_and_parses(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit)
    await watch.model_ready()
    uri, text = open_file(client, "tools/limits.py")
    actions = await actions_at(client, uri, position_of(text, "if value < low"))

    resolved = await client.code_action_resolve_async(actions["Suggest a refactor"])

    assert resolved.edit is not None and resolved.edit.changes, client.messages
    edits = resolved.edit.changes[uri]
    after = apply(text, edits)
    assert after != text
    assert parse_errors("limits.py", after) == 0
    assert "def clamp(" in after and after.startswith('"""Limits for the telemetry checks."""')
    rec = audit_lines(audit, kind="code_action.refactor")[-1]
    assert rec["result"]["outcome"] == "offered" and rec["result"]["parses"] is True
    assert rec["result"]["new_text"] == edits[0].new_text
    # Applying it runs the command the action carries: the accept reaches the log.
    assert resolved.command is not None and resolved.command.command == "airgap.accept"
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=resolved.command.command, arguments=resolved.command.arguments
        )
    )
    accepts = audit_lines(audit, kind="accept")
    assert [a["id"] for a in accepts] == [rec["id"]] and accepts[0]["file"] == uri


async def test_suggest_spark_contracts_adds_aspects_that_parse(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit)
    await watch.model_ready()
    uri, text = open_file(client, "src/altitude.ads")
    actions = await actions_at(client, uri, position_of(text, "Climb"))

    resolved = await client.code_action_resolve_async(actions["Suggest SPARK contracts"])

    assert resolved.edit is not None and resolved.edit.changes, client.messages
    after = apply(text, resolved.edit.changes[uri])
    assert parse_errors("altitude.ads", after) == 0
    language = for_path("altitude.ads")
    assert language is not None
    climb = next(d for d in definitions(after.encode(), language) if d.name == "Climb")
    added = {c.split("=>")[0].strip() for c in climb.contracts} - {"SPARK_Mode"}
    assert added and added <= {"Global", "Pre", "Post", "Depends", "Contract_Cases"}, climb
    rec = audit_lines(audit, kind="code_action.spark_contracts")[-1]
    assert rec["result"]["outcome"] == "offered" and set(rec["result"]["aspects"]) == added


async def test_explain_this_code_shows_the_explanation(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit)
    await watch.model_ready()
    uri, text = open_file(client, "tools/limits.py")
    actions = await actions_at(client, uri, position_of(text, "return high"))

    resolved = await client.code_action_resolve_async(actions["Explain this code"])

    assert resolved.edit is None and resolved.command is not None
    rec = audit_lines(audit, kind="code_action.explain")[-1]
    assert "def clamp(value, low, high):" in rec["prompt"]
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command=resolved.command.command, arguments=resolved.command.arguments
        )
    )
    shown = await watch.message(rec["id"])
    assert rec["text"].strip() and rec["text"].strip() in shown.message
