"""The real server over stdio, driven by a real LSP client, on the embedded default model."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from context.languages import for_document
from inference.stops import PIECE_REPEATS
from tests.conftest import CursorFile, cursor_file

SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
AUDIT_FIELDS = {
    "id",
    "time",
    "kind",
    "user",
    "host",
    "client",
    "file",
    "position",
    "language",
    "model",
    "device",
    "dtype",
    "decoding",
    "prompt",
    "text",
    "context_sources",
    "timings",
    "result",
    "prev_sha256",
}

pytestmark = pytest.mark.e2e


def accept_registrations(client: LanguageClient) -> list[types.Registration]:
    """Answer `client/registerCapability` as an editor does; returns what gets registered."""
    registered: list[types.Registration] = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def _register(_client: LanguageClient, params: types.RegistrationParams) -> None:
        registered.extend(params.registrations)

    return registered


async def start(client: LanguageClient, audit: Path, **options: object) -> types.InitializeResult:
    accept_registrations(client)
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        client_info=types.ClientInfo(name="airgap-e2e", version="1.2.3"),
        initialization_options={"auditPath": str(audit), **options},
    )
    return await client.initialize_session(params)


def open_doc(client: LanguageClient, doc: CursorFile, language_id: str) -> str:
    uri = doc.path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=1, text=doc.text
            )
        )
    )
    return uri


async def complete(client: LanguageClient, uri: str, doc: CursorFile) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=doc.line, character=doc.character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items]


def assert_replays(audit: Path, suggestion_id: str) -> None:
    """`airgap-lsp audit replay` gives the suggestion's text again."""
    replay = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", "replay", suggestion_id, "--log", str(audit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0 and "SAME text" in replay.stdout, replay.stdout + replay.stderr


def audit_lines(path: Path, kind: str | None = "inline_completion") -> list[dict]:
    """The audit log's suggestion lines (or all lines, accept events too, with kind=None)."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in lines if kind is None or r["kind"] == kind]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def test_initialize_advertises_inline_completion(client: LanguageClient, tmp_path: Path):
    result = await start(client, tmp_path / "audit.jsonl")
    assert result.capabilities.inline_completion_provider
    assert result.server_info is not None and result.server_info.name == "airgap-lsp"


async def test_ada_completion_is_audited_before_the_reply(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    texts = await complete(client, uri, doc)

    assert len(texts) == 1 and texts[0].strip(), f"expected one non-empty suggestion, got {texts}"
    assert "\n" not in texts[0], "a cursor inside a line asks for the rest of that line only"
    lines = audit_lines(audit)  # written before the reply, so present now
    assert len(lines) == 1
    rec = lines[0]
    assert rec.keys() >= AUDIT_FIELDS
    assert rec["kind"] == "inline_completion"
    assert rec["text"] == texts[0]
    assert rec["file"] == uri
    assert rec["position"] == {"line": doc.line, "character": doc.character}
    assert rec["language"] == "ada"
    assert rec["client"] == {"name": "airgap-e2e", "version": "1.2.3"}
    assert rec["user"]["uid"] == os.getuid()
    assert rec["model"]["name"] == default_model.manifest.name
    assert rec["model"]["version"] == default_model.manifest.version
    assert rec["model"]["manifest_sha256"] == default_model.manifest_sha256
    assert rec["device"] in ("cpu",) or rec["device"].startswith("cuda")
    assert rec["decoding"]["strategy"] == "greedy"
    # The CPU threads it decoded with, which replay uses again (none on a GPU).
    assert (
        rec["decoding"]["threads"] >= 1
        if rec["device"] == "cpu"
        else not rec["decoding"]["threads"]
    )
    # How the steps ran: on a GPU, a static cache and a compiled step; on the CPU, neither.
    assert rec["decoding"]["steps"].startswith("dynamic" if rec["device"] == "cpu" else "static")
    # A piece written this many times in a row within a line would have ended it; replay reads it.
    assert rec["decoding"]["piece_repeats"] == PIECE_REPEATS
    # The full prompt is there: the model saw the text up to the cursor, but for its last
    # token, cut and forced as the generation's start (token healing), which the line records.
    typed = doc.text.split("\n")[doc.line][: doc.character]
    forced = rec["decoding"]["forced_prefix"]
    assert forced and (rec["prompt"] + forced).endswith(typed)
    assert rec["decoding"]["line_before"] == typed  # where the suggestion's line starts
    assert "Températures" in rec["prompt"]
    assert rec["timings"]["new_tokens"] >= 1 and rec["timings"]["total_ms"] > 0
    assert rec["prev_sha256"] == "0" * 64
    # The suggestion went through the parse check of its block (the Ada grammar is there).
    verdict = rec["result"]["parse_check"]
    assert verdict == "ok" or verdict.startswith("trimmed"), rec["result"]
    # The model's loading was shown as work-done progress, ending with the device it runs on.
    reports = [r for rs in client.progress_reports.values() for r in rs]
    assert any(getattr(r, "title", "").startswith("airgap-lsp: loading") for r in reports)
    ends = [r.message for r in reports if isinstance(r, types.WorkDoneProgressEnd)]
    assert any(rec["device"] in (m or "") for m in ends), ends


async def test_a_lone_surrogate_in_the_document_is_completed_and_audited(
    client: LanguageClient, tmp_path: Path
):
    """A JSON escape can put half a surrogate pair in the editor's text: the prompt carries it
    as U+FFFD, cross-file context on, and the log can hold it."""
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, context={"crossFile": True})
    doc = cursor_file("completion/sensors.adb")
    broken = CursorFile(
        doc.path, doc.text.replace("Températures", "Temp\ud800ratures"), doc.line, doc.character
    )
    assert broken.text != doc.text
    uri = open_doc(client, broken, "ada")

    texts = await complete(client, uri, broken)

    assert texts and texts[0].strip(), texts
    (rec,) = audit_lines(audit)
    assert "Temp\ufffdratures" in rec["prompt"] and rec["text"] == texts[0]


async def test_same_prompt_gives_the_same_text(client: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    first = await complete(client, uri, doc)
    second = await complete(client, uri, doc)

    assert first == second and first
    lines = audit_lines(audit)
    assert [r["text"] for r in lines] == first + second
    assert lines[0]["prompt"] == lines[1]["prompt"]
    assert lines[0]["id"] != lines[1]["id"]


@pytest.mark.parametrize(("fixture", "language"), [("stacks.adb", "ada"), ("counter.vhd", "vhdl")])
async def test_at_a_line_start_the_suggestion_is_code_and_replays(
    client: LanguageClient, tmp_path: Path, fixture: str, language: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file(f"completion/{fixture}")
    uri = open_doc(client, doc, language)

    texts = await complete(client, uri, doc)

    # A line of code where the cursor stands, not a blank line nor nothing.
    assert texts and texts[0].strip() and not texts[0][0].isspace(), texts
    rec = audit_lines(audit)[0]
    # The prompt ends before the newline, which the generation spelled with the indentation:
    # the tokenizer merges the two, and a prompt ending on a lone newline misleads the model.
    indent = doc.text.split("\n")[doc.line][: doc.character]
    assert rec["decoding"]["forced_prefix"] == "\n" + indent
    assert not rec["prompt"].endswith("\n")
    before = doc.text[: doc.text.index("\n" + indent + "\n") + 1 + len(indent)]
    assert before.endswith(rec["prompt"][-40:] + rec["decoding"]["forced_prefix"])
    # The block opened by the line above, or whose rest is missing, is asked for.
    assert rec["decoding"]["multiline"] is True
    assert_replays(audit, rec["id"])


async def test_block_completion_stays_inside_the_block(client: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/limits.py")
    uri = open_doc(client, doc, "python")

    texts = await complete(client, uri, doc)

    rec = audit_lines(audit)[0] if texts else None
    assert rec is not None and rec["decoding"]["multiline"] is True
    # The cursor's line is indented by 4: continuation lines of the suggestion must stay in the
    # function body, never dedent out of it (the next `def` is not the model's to write).
    for line in texts[0].split("\n")[1:]:
        if line.strip():
            assert len(line) - len(line.lstrip()) >= 4, texts[0]


async def test_invalid_settings_are_reported_and_the_last_good_ones_kept(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, maxTokensLine=8)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"airgap": {"maxTokensLine": "many", "device": "quantum"}}
        )
    )
    message = await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    assert message.type == types.MessageType.Error
    assert "maxTokensLine" in message.message and "device" in message.message

    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")
    await complete(client, uri, doc)
    rec = audit_lines(audit)[0]
    assert rec["decoding"]["max_new_tokens"] == 8  # the last good value, not the default
    assert rec["timings"]["new_tokens"] <= 8


async def test_a_missing_model_is_an_error_that_says_what_to_do(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, model="no-such-model@1.0")
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    with pytest.raises(Exception, match="airgap-lsp model import") as caught:
        await complete(client, uri, doc)

    assert "no-such-model@1.0" in str(caught.value)
    # The server stays up and keeps answering with the error (it tries the store again).
    with pytest.raises(Exception, match="not in the store"):
        await complete(client, uri, doc)
    shown = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("no-such-model@1.0" in m for m in shown), shown
    assert audit_lines(audit, kind=None) == []  # nothing suggested, nothing audited


async def test_a_newer_request_for_the_document_cancels_the_older(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/limits.py")
    uri = open_doc(client, doc, "python")

    # Both are sent at once, while the model is still loading: the older one is stale before
    # it generates anything.
    older = asyncio.ensure_future(complete(client, uri, doc))
    newer = asyncio.ensure_future(complete(client, uri, doc))
    results = await asyncio.gather(older, newer, return_exceptions=True)

    assert isinstance(results[0], Exception) and "superseded" in str(results[0]), results[0]
    assert isinstance(results[1], list)
    assert len(audit_lines(audit)) == (1 if results[1] else 0)  # only what was shown is audited


async def test_a_burst_of_keystrokes_costs_one_generation(client: LanguageClient, tmp_path: Path):
    # The debounce is longer than it takes the server to read the whole burst, so that each
    # keystroke's request is replaced before the model starts on it, whatever the machine's load.
    # The first, after a pause, starts at once: the second replaces it before it has generated.
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, debounceMs=1500)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")
    typed = "R.Value"
    requests = []
    for n, char in enumerate(typed, 1):
        type_at(client, uri, 1 + n, doc.line, doc.character + n - 1, char)
        at = types.Position(line=doc.line, character=doc.character + n)
        requests.append(
            asyncio.ensure_future(
                client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=at,
                        context=types.InlineCompletionContext(
                            trigger_kind=types.InlineCompletionTriggerKind.Automatic
                        ),
                    )
                )
            )
        )
    results = await asyncio.gather(*requests, return_exceptions=True)

    assert all("superseded" in str(r) for r in results[:-1]), results
    assert not isinstance(results[-1], Exception), results[-1]
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.completionStats")
    )
    assert stats["requested"] == len(typed)
    assert stats["debounced"] == len(typed) - 2
    assert stats["generations_finished"] == 1
    assert stats["generations"] - stats["generations_cancelled"] == 1
    lines = audit_lines(audit)
    assert len(lines) <= 1
    # The last keystroke's request waited for a next one that did not come.
    assert all(r["timings"]["debounce_ms"] >= 1500 for r in lines)
    assert all((r["prompt"] + r["decoding"]["forced_prefix"]).endswith(typed) for r in lines)


async def test_a_request_after_a_pause_starts_at_once(client: LanguageClient, tmp_path: Path):
    # The debounce waits only inside a burst: the first request, with none before it, does not
    # wait for a next keystroke, however long the debounce.
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, debounceMs=1500)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")
    assert await complete(client, uri, doc)

    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.completionStats")
    )
    assert stats["debounced"] == 0
    (line,) = audit_lines(audit)
    assert line["timings"]["debounce_ms"] == 0
    assert line["timings"]["server_ms"] >= line["timings"]["context_ms"]


def type_at(client: LanguageClient, uri: str, version: int, line: int, character: int, text: str):  # type: ignore[no-untyped-def]
    """The editor's edit for `text` typed at a position (on one line)."""
    at = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


async def test_typing_the_start_of_a_suggestion_shows_its_rest_without_a_generation(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")
    (first,) = await complete(client, uri, doc)
    assert len(first) >= 3, f"the test needs a suggestion of 3 characters or more, got {first!r}"

    # The user types the suggestion's first two characters by hand.
    typed = first[:2]
    type_at(client, uri, 2, doc.line, doc.character, typed)
    moved = CursorFile(doc.path, doc.text, doc.line, doc.character + len(typed))
    assert await complete(client, uri, moved) == [first[2:]]

    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.completionStats")
    )
    # (a suggestion the parse check withheld is asked for again: not another request's)
    asked = stats["generations"] - stats["asked_again"]
    assert (asked, stats["served_typed_on"]) == (1, 1)
    origin, rest = audit_lines(audit)
    assert rest["id"] != origin["id"] and rest["text"] == first[2:]
    assert rest["position"] == {"line": doc.line, "character": doc.character + len(typed)}
    assert rest["result"]["served_from"] == origin["id"]
    assert rest["result"]["typed"] == typed
    assert (rest["prompt"], rest["model"]) == (origin["prompt"], origin["model"])
    events = audit_lines(audit, kind="not_accepted")
    assert [(e["id"], e["reason"]) for e in events] == [
        (origin["id"], "typed on: the rest was shown again")
    ]

    # A replay of the line runs the generation it came from, and gets the same text.
    replayed = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", "replay", rest["id"], "--log", str(audit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "SAME text" in replayed.stdout and origin["id"] in replayed.stdout

    # A character the suggestion does not have next: the model is asked again.
    other = "Z" if first[2] != "Z" else "Y"
    type_at(client, uri, 3, doc.line, moved.character, other)
    await complete(client, uri, CursorFile(doc.path, doc.text, doc.line, moved.character + 1))
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.completionStats")
    )
    asked = stats["generations"] - stats["asked_again"]
    assert (asked, stats["served_typed_on"]) == (2, 1)


async def test_a_block_comes_a_statement_at_a_time_and_its_rest_is_ready_when_accepted(
    client: LanguageClient, tmp_path: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/totals.py")
    uri = open_doc(client, doc, "python")
    (first,) = await complete(client, uri, doc)
    (origin,) = audit_lines(audit)
    assert origin["decoding"]["multiline"] and origin["decoding"]["first_statement"]
    python = for_document("", "python")
    assert python is not None
    assert origin["decoding"]["statement_rule_sha256"] == python.statement_rule_sha256()
    # The model wrote more than one statement: the first is shown, the rest is being written.
    assert origin["decoding"]["stop_reason"] == "end_of_statement", first

    # The user accepts it: the editor inserts it and asks again at its end.
    type_at(client, uri, 2, doc.line, doc.character, first)
    lines = first.split("\n")
    column = (doc.character if len(lines) == 1 else 0) + len(lines[-1])
    end = CursorFile(doc.path, doc.text, doc.line + len(lines) - 1, column)
    (rest,) = await complete(client, uri, end)

    assert rest.startswith("\n") and rest.strip(), rest
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.completionStats")
    )
    # No generation of its own: the rest was written while the first statement was on screen.
    assert stats["generations"] - stats["asked_again"] == 1
    assert (stats["continued"], stats["served_continuation"]) == (1, 1)
    origin, more = audit_lines(audit)
    assert more["result"]["continues"] == origin["id"] and more["text"] == rest
    # Its own generation: the prompt with the first statement accepted, the rest of the block.
    assert more["prompt"] == origin["prompt"] + origin["decoding"]["forced_prefix"] + first
    assert more["decoding"]["multiline"] and not more["decoding"]["first_statement"]
    assert more["position"] == {"line": end.line, "character": end.character}
    assert_replays(audit, more["id"])
