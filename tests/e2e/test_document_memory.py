"""What open documents cost the server, read from its resident memory (/proc/<pid>/status): a few
times a document's size, whatever its lines, and nothing left once it is closed.

Parsed, a file of `x = 1` lines took 150 times its size (a tree-sitter node for each token: 20 MB
took 3 GB, 100 MB more than the machine had); each notification left about 1.8 KB behind. The
model is loaded and has answered a full-size prompt before the first reading, so that what grows
after it is the documents'.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.features.inline_completion import STATS
from tests.e2e.harness import bounded, completion_items, completion_params, rss_kib
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines

pytestmark = pytest.mark.e2e

SHORT_LINE = "x = 1\n"
SIZE = 8_000_000  # bytes of `x = 1` lines
MAX_TIMES_SIZE = 12  # the server's peak while it opens the file, completes and edits in it
CYCLES = 10_000  # documents opened and closed
MAX_CYCLES_GROWTH_KIB = 10 * 1024  # what the notifications kept: 35 MB


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "airgap_lsp", "serve"])
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    if not lsp_client.stopped:
        await lsp_client.shutdown_session()


def server_pid(client: LanguageClient) -> int:
    server = client._server  # noqa: SLF001 - pygls keeps the process it started here
    assert server is not None
    return server.pid


def peak_kib(pid: int) -> int:
    """VmHWM: the most the process held since it started or since `reset_peak`."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to VmRSS (proc(5))


async def ready(client: LanguageClient, workspace: Path, audit: Path) -> Watch:
    workspace.mkdir()
    (workspace / "app.py").write_text("def scale(value):\n    return value * 2\n")
    watch = Watch(client)
    await start_indexed(client, audit, workspace, maxTokensLine=8, maxTokensBlock=16)
    await watch.model_ready()
    return watch


async def settled(client: LanguageClient) -> Any:
    """A request answered after every notification sent before it was handled."""
    params = types.ExecuteCommandParams(command=STATS)
    return await bounded(client.workspace_execute_command_async(params), "the completion stats")


def open_text(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )


def close(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def complete(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    result = await bounded(
        client.text_document_inline_completion_async(completion_params(uri, line, character)),
        f"a completion in {uri}",
    )
    return [str(item.insert_text) for item in completion_items(result)]


async def test_a_large_file_of_short_lines_costs_a_few_times_its_size_and_is_completed(
    client: LanguageClient, tmp_path: Path, default_model: object
) -> None:
    workspace, audit = tmp_path / "ws", tmp_path / "audit.jsonl"
    watch = await ready(client, workspace, audit)
    pid = server_pid(client)
    warm = (workspace / "warm.py").as_uri()
    open_text(client, warm, SHORT_LINE * 2000)
    await complete(client, warm, 2000, 0)
    await settled(client)
    reset_peak(pid)
    before = rss_kib(pid)

    text = SHORT_LINE * (SIZE // len(SHORT_LINE))
    lines = text.count("\n")
    big = (workspace / "big.py").as_uri()
    open_text(client, big, text)
    del text
    suggested = await complete(client, big, lines, 0)
    client.text_document_did_change(  # a keystroke, and the completion after it
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=big, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=lines, character=0),
                        end=types.Position(line=lines, character=0),
                    ),
                    text="x",
                )
            ],
        )
    )
    await complete(client, big, lines, 1)
    await settled(client)
    grown = (peak_kib(pid) - before) * 1024
    print(f"\n{SIZE / 1e6:.0f} MB of short lines: peak +{grown / 1e6:.0f} MB")
    assert grown < MAX_TIMES_SIZE * SIZE, f"{grown / SIZE:.0f} times the document's size"

    # Completed from a window around the cursor; the user is told once what is off.
    assert suggested, "no completion in the large file"
    record = [r for r in audit_lines(audit) if r["file"] == big][0]
    assert len(record["prompt"]) < 20_000 and record["result"]["parse_check"] == "not checked"
    told = await bounded(watch.message("big.py"), "the message that big.py is not parsed")
    assert "over the 1.0 MB it parses" in told.message, told.message
    symbols = await bounded(
        client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=big))
        ),
        "the outline of the large file",
    )
    assert symbols == []
    close(client, big)
    open_text(client, big, SHORT_LINE * (SIZE // len(SHORT_LINE)))
    await settled(client)
    assert sum("big.py" in m.message for m in client.messages) == 1, client.messages


async def test_documents_opened_and_closed_leave_nothing_behind(
    client: LanguageClient, tmp_path: Path, default_model: object
) -> None:
    workspace = tmp_path / "ws"
    await ready(client, workspace, tmp_path / "audit.jsonl")
    pid = server_pid(client)
    text = "def add(a, b):\n    return a + b\n" * 200

    async def open_and_close(count: int) -> None:
        for n in range(count):
            uri = (workspace / f"module_{n}.py").as_uri()
            open_text(client, uri, text)
            close(client, uri)
            if n % 500 == 499:
                await settled(client)
        await settled(client)

    await open_and_close(1000)  # what the first ones cost the allocator stays with it
    before = rss_kib(pid)
    await open_and_close(CYCLES)
    grown = rss_kib(pid) - before
    print(f"\n{CYCLES} documents opened and closed: +{grown / 1024:.1f} MiB")
    assert grown < MAX_CYCLES_GROWTH_KIB, f"+{grown / 1024:.1f} MiB"
