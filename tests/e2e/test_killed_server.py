"""A server killed with SIGKILL at a bad moment loses nothing that was shown: restarted on the
same workspace and the same audit log, it indexes and completes, the log verifies, and its
chain goes on from the last whole line.

Each kill waits for a real event of the moment it names: the index's work-done progress, the
progress of the generation the request asked to follow, or the audit writer's test gate
(faultgate.py) holding half a line in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

from tests.conftest import FIXTURES, CursorFile, cursor_file
from tests.e2e.test_context import start_indexed
from tests.e2e.test_inline_completion import complete, open_doc

SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
GATED = [sys.executable, "-m", "tests.e2e.faultgate"]
HELD = "airgap/test/auditWriteHeld"  # faultgate.py: half a line is in the file, the writer held
WORKSPACE = FIXTURES / "context"
WAIT_S = 300  # the longest wait for one event: a model load and a completion on a busy CPU

pytestmark = pytest.mark.e2e


@contextlib.asynccontextmanager
async def served(command: list[str], env: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A server over stdio and a test client on it; shut down at the end unless it died."""
    client = make_test_lsp_client()
    await client.start_io(*command, env=env)
    server = client._server  # noqa: SLF001 - the process, to kill it and to reach its files
    assert server is not None
    try:
        yield client
        if server.returncode is None:
            await asyncio.wait_for(client.shutdown_session(), WAIT_S)
    finally:
        if server.returncode is None:
            server.kill()  # a failed test: never leave a server behind
        await client.stop()


async def kill(client: LanguageClient) -> None:
    """SIGKILL, now: no handler runs, nothing is flushed or closed by the server."""
    server = client._server  # noqa: SLF001
    assert server is not None and server.returncode is None, "the server died before the kill"
    server.send_signal(signal.SIGKILL)
    await asyncio.wait_for(server.wait(), 60)
    assert server.returncode == -signal.SIGKILL


def verify_cli(log: Path) -> subprocess.CompletedProcess[str]:
    """`airgap-lsp audit verify`, as an auditor runs it."""
    return subprocess.run(
        [*SERVER[:-1], "audit", "verify", "--log", str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def whole_lines(log: Path) -> list[bytes]:
    data = log.read_bytes()
    assert data.endswith(b"\n"), "the log ends in an unfinished line"
    return data[:-1].split(b"\n")


def assert_chain_goes_on(log: Path, before: list[bytes]) -> list[dict[str, Any]]:
    """The lines from before are still there, byte for byte, and the next one links to the last
    of them; the whole log verifies. Returns the lines written since."""
    lines = whole_lines(log)
    assert lines[: len(before)] == before
    new = [json.loads(line) for line in lines[len(before) :]]
    assert new, "nothing was written after the restart"
    assert new[0]["prev_sha256"] == hashlib.sha256(before[-1]).hexdigest()
    verified = verify_cli(log)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{len(lines)} lines verified, the chain is whole" in verified.stdout, verified.stdout
    return new


async def restart_and_complete(audit: Path, workspace: Path, doc: CursorFile) -> list[str]:
    """A new server on the same workspace and log (the production command, no test gate): the
    index completes, then one completion."""
    async with served(SERVER) as client:
        await asyncio.wait_for(start_indexed(client, audit, workspace), WAIT_S)
        uri = open_doc(client, doc, "ada")
        return await asyncio.wait_for(complete(client, uri, doc), WAIT_S)


def inline_params(doc: CursorFile, token: str | None = None) -> types.InlineCompletionParams:
    """A completion at the file's cursor; with `token`, the client follows its generation."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=doc.path.as_uri()),
        position=types.Position(line=doc.line, character=doc.character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
        work_done_token=token,
    )


async def first_suggestion(
    client: LanguageClient, audit: Path, doc: CursorFile, token: str | None = None
) -> list[bytes]:
    """One completion, shown and audited: the log's whole lines."""
    uri = open_doc(client, doc, "ada")
    if token is None:
        texts = await asyncio.wait_for(complete(client, uri, doc), WAIT_S)
    else:
        client.progress_reports[token] = []  # the client's own token, sent with the request
        result = await asyncio.wait_for(
            client.text_document_inline_completion_async(inline_params(doc, token)), WAIT_S
        )
        assert isinstance(result, types.InlineCompletionList)
        texts = [str(i.insert_text) for i in result.items]
        kinds = [type(r) for r in client.progress_reports[token]]
        assert kinds == [types.WorkDoneProgressBegin, types.WorkDoneProgressEnd], kinds
    assert texts and texts[0].strip(), texts
    lines = whole_lines(audit)
    assert [json.loads(line)["text"] for line in lines] == texts
    return lines


# -- killed while indexing ------------------------------------------------------------------------
def big_workspace(root: Path, files: int) -> Path:
    """An Ada code base of `files` package specs: seconds of indexing, not milliseconds."""
    for n in range(files):
        folder = root / f"subsystem_{n % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"Unit_{n:05d}"
        body = "\n".join(
            f"   function Scale_{k} (Reading : Integer) return Integer;" for k in range(20)
        )
        (folder / f"{name.lower()}.ads").write_text(f"package {name} is\n{body}\nend {name};\n")
    return root


async def index_report(client: LanguageClient, after: set[Any]) -> types.WorkDoneProgressReport:
    """The first report of an indexing progress begun after `after`, while files remain."""

    def found() -> types.WorkDoneProgressReport | None:
        for token, reports in client.progress_reports.items():
            if token in after or not reports:
                continue
            if not getattr(reports[0], "title", "").endswith("indexing the workspace"):
                continue
            for r in reports:
                if isinstance(r, types.WorkDoneProgressReport):
                    return r
        return None

    while (report := found()) is None:
        await client.wait_for_notification(types.PROGRESS)
    return report


async def test_killed_while_indexing(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    workspace = big_workspace(tmp_path / "workspace", 4000)
    audit = tmp_path / "audit.jsonl"
    doc = cursor_file("completion/sensors.adb")

    async with served(SERVER) as client:
        await asyncio.wait_for(start_indexed(client, audit, workspace), WAIT_S)
        before = await first_suggestion(client, audit, doc)
        # New exclusions make the server index the workspace again; kill it while it does.
        seen = set(client.progress_reports)
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"context": {"exclude": ["*.tmp"]}})
        )
        report = await asyncio.wait_for(index_report(client, seen), WAIT_S)
        await kill(client)
        forwarder = client._stderr_forwarder  # noqa: SLF001 - reads the server's log to its end
        assert forwarder is not None
        await asyncio.wait_for(forwarder, 60)

    done, total = (int(n) for n in (report.message or "").split()[0].split("/"))
    assert 0 < done < total == 4000, report.message
    # The server's log, read to the end, shows that it died before that index was done.
    assert capfd.readouterr().err.count("files indexed in") == 1
    verified = verify_cli(audit)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    async with served(SERVER) as client:
        await asyncio.wait_for(start_indexed(client, audit, workspace), WAIT_S)
        ends = [
            r.message or ""
            for rs in client.progress_reports.values()
            for r in rs
            if isinstance(r, types.WorkDoneProgressEnd)
        ]
        assert any(m.startswith(f"{total} files indexed") for m in ends), ends
        uri = open_doc(client, doc, "ada")
        texts = await asyncio.wait_for(complete(client, uri, doc), WAIT_S)

    assert texts and texts[0].strip()
    new = assert_chain_goes_on(audit, before)
    assert [r["text"] for r in new if r["kind"] == "inline_completion"] == texts


# -- killed while generating ----------------------------------------------------------------------
async def test_killed_while_generating(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    doc = cursor_file("completion/sensors.adb")
    token = "airgap-e2e-generation"

    async with served(SERVER) as client:
        await asyncio.wait_for(start_indexed(client, audit, WORKSPACE), WAIT_S)
        # A generation the client follows begins, then ends with its reply ...
        before = await first_suggestion(client, audit, doc, "airgap-e2e-first")
        # ... and the next one is killed once it has begun.
        client.progress_reports[token] = []
        pending = asyncio.ensure_future(
            client.text_document_inline_completion_async(inline_params(doc, token))
        )
        async with asyncio.timeout(WAIT_S):
            while not client.progress_reports[token]:
                await client.wait_for_notification(types.PROGRESS)
        assert isinstance(client.progress_reports[token][0], types.WorkDoneProgressBegin)
        await kill(client)
        with pytest.raises(RuntimeError, match="exited with return code: -9"):
            await asyncio.wait_for(pending, 60)

    # The killed generation left nothing: its line is written only once it is done.
    assert whole_lines(audit) == before
    texts = await restart_and_complete(audit, WORKSPACE, doc)

    assert texts and texts[0].strip()
    new = assert_chain_goes_on(audit, before)
    assert [r["text"] for r in new if r["kind"] == "inline_completion"] == texts


# -- killed while writing an audit line -----------------------------------------------------------
async def test_killed_while_writing_an_audit_line(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    doc = cursor_file("completion/sensors.adb")

    async with served(GATED) as client:
        await asyncio.wait_for(start_indexed(client, audit, WORKSPACE), WAIT_S)
        before = await first_suggestion(client, audit, doc)
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="airgap.test.holdNextAuditWrite")
        )
        # The request goes out at the first await, which already waits for the gate.
        pending = asyncio.ensure_future(complete(client, doc.path.as_uri(), doc))
        held = await asyncio.wait_for(client.wait_for_notification(HELD), WAIT_S)
        await kill(client)
        # The suggestion whose line was cut was never shown.
        with pytest.raises(RuntimeError, match="exited with return code: -9"):
            await asyncio.wait_for(pending, 60)

    written = held.written
    data = audit.read_bytes()
    whole = b"".join(line + b"\n" for line in before)
    assert data.startswith(whole) and len(data) == len(whole) + written > len(whole)
    assert not data.endswith(b"\n")
    # Before any restart, an auditor already sees a valid log and what the cut line is.
    verified = verify_cli(audit)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"an unfinished line of {written} bytes" in verified.stdout, verified.stdout

    texts = await restart_and_complete(audit, WORKSPACE, doc)

    assert texts and texts[0].strip()
    new = assert_chain_goes_on(audit, before)  # the cut bytes are gone, the chain goes on
    assert [r["text"] for r in new if r["kind"] == "inline_completion"] == texts
