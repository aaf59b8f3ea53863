"""A workspace with everything in it that should not break the server: invalid UTF-8, a 50 MB file,
binary files, code nested 20,000 deep, a symlink loop, links out of the workspace. And files
outside the workspace that the server must never open.

The server runs under `netwatch.py --watch-open OUTSIDE`, which records every file the process
opens under OUTSIDE: an independent witness that nothing there was read.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import FIXTURES
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines

pytestmark = pytest.mark.e2e

NETWATCH = str(Path(__file__).with_name("netwatch.py"))
SCRATCH = Path(tempfile.mkdtemp(prefix="airgap-hostile-"))
OUTSIDE = SCRATCH / "outside"  # never to be opened by the server
EVENTS = SCRATCH / "events.jsonl"
MARKER = "OUTSIDE_SECRET_7f3a"
WAIT = 300.0  # seconds: a bound on each request, so a hang fails instead of blocking CI
DEPTH = 20_000
BIG = 50 * 1024 * 1024
NOTES = "procedure Notes is\nbegin\n   null;  --  \nend Notes;\n"
FILLER = "   X := X + 1;  --  filler to make a very large body\n"


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, NETWATCH, str(EVENTS), "--watch-open", str(OUTSIDE)]
    )
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    if not lsp_client.stopped:
        await lsp_client.shutdown_session()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    OUTSIDE.mkdir(parents=True, exist_ok=True)
    (OUTSIDE / "secret.ads").write_text(f"package Secret is\n   Key : constant := 16#{MARKER}#;\n")
    (OUTSIDE / "notes.adb").write_text(NOTES)
    EVENTS.write_text("")
    root = tmp_path / "ws"
    shutil.copytree(FIXTURES / "context", root)
    src = root / "src"
    (src / "latin1.ads").write_bytes(
        "package Latin1 is\n   --  Résumé\n   procedure Reset;\nend Latin1;\n".encode("latin-1")
    )
    (src / "firmware.c").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 64)
    (src / "deep.py").write_text(
        "def outer():\n    return " + "[" * DEPTH + "]" * DEPTH + "\n\ndef after():\n    pass\n"
    )
    line = FILLER
    with (src / "huge.adb").open("w") as fh:
        fh.write("procedure Huge is\n   X : Integer := 0;\nbegin\n")
        fh.write(line * (BIG // len(line)))
        fh.write("   \nend Huge;\n")
    os.symlink(root, src / "loop")  # a link back up: a loop for anything that follows it
    os.symlink(OUTSIDE, src / "vendor")  # a folder link out of the workspace
    os.symlink(OUTSIDE / "secret.ads", src / "secret_link.ads")  # a file link out
    return root


def opened_outside() -> list[str]:
    events = [json.loads(x) for x in EVENTS.read_text().splitlines() if x]
    return [e["args"] for e in events if e["kind"] == "opened"]


def open_text(client: LanguageClient, path: Path, text: str, language: str) -> str:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id=language, version=1, text=text
            )
        )
    )
    return path.as_uri()


def at(uri: str, line: int, character: int) -> dict:
    return {
        "text_document": types.TextDocumentIdentifier(uri=uri),
        "position": types.Position(line=line, character=character),
    }


async def complete(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    result = await asyncio.wait_for(
        client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                **at(uri, line, character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        ),
        WAIT,
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [str(i.insert_text) for i in items]


async def everything_at(client: LanguageClient, uri: str, line: int, character: int) -> dict:
    """Hover, symbols, code actions and a completion at one place: each must be answered."""
    started = time.perf_counter()
    hover = await asyncio.wait_for(
        client.text_document_hover_async(types.HoverParams(**at(uri, line, character))), WAIT
    )
    symbols = await asyncio.wait_for(
        client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        WAIT,
    )
    where = types.Position(line=line, character=character)
    actions = await asyncio.wait_for(
        client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=where, end=where),
                context=types.CodeActionContext(diagnostics=[]),
            )
        ),
        WAIT,
    )
    completion = await complete(client, uri, line, character)
    print(f"{uri[-30:]}: answered in {time.perf_counter() - started:.1f} s")
    return {"hover": hover, "symbols": symbols, "actions": actions, "completion": completion}


async def test_a_hostile_workspace_is_indexed_and_served_and_nothing_outside_is_read(
    client: LanguageClient, workspace: Path, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = Watch(client)
    await asyncio.wait_for(
        start_indexed(client, audit, workspace, maxTokensLine=8, maxTokensBlock=16), WAIT
    )
    await watch.model_ready()
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=""))
    indexed = {Path(str(s.location.uri)).name for s in symbols or [] if hasattr(s, "location")}
    assert {"latin1.ads", "deep.py", "autopilot.adb"} <= indexed
    assert not {"firmware.c", "secret_link.ads", "huge.adb"} & indexed  # binary, a link, too big

    # Nested 20,000 deep: every request is answered, and what follows the nesting is seen.
    deep = workspace / "src" / "deep.py"
    uri = open_text(client, deep, deep.read_text(), "python")
    seen = await everything_at(client, uri, 1, 11 + DEPTH)
    assert "after" in {s.name for s in seen["symbols"]}

    # 50 MB open in the editor: answered, and the prompt is a window on it, not the file.
    huge = workspace / "src" / "huge.adb"
    text = huge.read_text()
    uri = open_text(client, huge, text, "ada")
    # On the empty line after 50 MB of the same statement: the model writes one more.
    seen = await everything_at(client, uri, text.count("\n") - 2, 3)
    assert seen["completion"], "no completion in the 50 MB file"
    rec = audit_lines(audit)[-1]
    assert rec["file"].endswith("src/huge.adb") and len(rec["prompt"]) < 20_000

    # A file outside the workspace that the editor never opened: nothing is read, nothing said.
    secret = (OUTSIDE / "secret.ads").as_uri()
    seen = await everything_at(client, secret, 1, 10)
    assert seen["hover"] is None and seen["actions"] is None, seen
    assert not seen["symbols"] and seen["completion"] == [], seen

    # A file outside the workspace that the editor did open: completed from what the editor
    # sent, with context from the workspace only; its neighbour is not read.
    notes = OUTSIDE / "notes.adb"
    uri = open_text(client, notes, notes.read_text(), "ada")
    # (at the end of a comment: whatever the model writes there parses)
    assert await complete(client, uri, 2, len("   null;  --  "))
    rec = audit_lines(audit)[-1]
    assert rec["file"].endswith("notes.adb")
    assert all(not s["path"].startswith(("/", "..")) for s in rec["context_sources"])

    await client.shutdown_session()
    assert opened_outside() == [], opened_outside()
    assert MARKER not in audit.read_text(encoding="utf-8")
