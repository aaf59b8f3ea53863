"""No way out: a whole session attempts no network connection, and a planted one is refused.

The server runs under `netwatch.py`, whose first audit hook records every socket event of the
process independently of the server's own guard.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from context.index import PARALLEL_MIN_FILES, scan_workers
from tests.conftest import cursor_file
from tests.e2e.test_context import start_indexed
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc, start

NETWATCH = str(Path(__file__).with_name("netwatch.py"))
NAME_LOOKUPS = {
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
}

pytestmark = pytest.mark.e2e


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def reaching_out(evs: list[dict]) -> list[dict]:
    """Connections to anything but a Unix socket, datagrams sent to an address, name look-ups."""
    return [
        e
        for e in evs
        if (e["event"] == "socket.connect" and e["family"] != socket.AF_UNIX)
        or e["event"] in ("socket.sendto", "socket.sendmsg")
        or e["event"] in NAME_LOOKUPS
    ]


LOGS = Path(tempfile.mkdtemp(prefix="airgap-netwatch-"))


def _watched(log_name: str, *extra: str):  # type: ignore[no-untyped-def]
    log = LOGS / log_name
    return log, ClientServerConfig(server_command=[sys.executable, NETWATCH, str(log), *extra])


SESSION_LOG, SESSION = _watched("netwatch-session.jsonl")
PLANT_LOG, PLANTED = _watched("netwatch-plant.jsonl", "--plant")
LARGE = LOGS / "large-workspace"  # enough files that the index reads them in worker processes
LARGE_LOG, LARGE_SESSION = _watched("netwatch-large.jsonl", "--watch-open", str(LARGE))


@pytest_lsp.fixture(config=SESSION)
async def session(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    if not lsp_client.stopped:
        await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=PLANTED)
async def planted(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    if not lsp_client.stopped:
        await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=LARGE_SESSION)
async def large(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    if not lsp_client.stopped:
        await lsp_client.shutdown_session()


@pytest.fixture(autouse=True)
def fresh_logs():  # type: ignore[no-untyped-def]
    for log in (SESSION_LOG, PLANT_LOG, LARGE_LOG):
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
    yield


async def test_a_whole_session_attempts_no_connection(session: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    await start(session, audit)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(session, doc, "ada")
    texts = await complete(session, uri, doc)
    assert texts and len(audit_lines(audit)) == 1  # the model loaded, answered, was audited
    await session.shutdown_session()

    seen = events(SESSION_LOG)
    assert seen, "the watcher recorded nothing: it did not run"
    assert reaching_out(seen) == [], reaching_out(seen)
    assert not [e for e in seen if e["kind"] == "leaked"]


async def test_a_planted_outbound_call_is_refused_and_reported(
    planted: LanguageClient, tmp_path: Path
):
    await start(planted, tmp_path / "audit.jsonl")

    result = await planted.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.test.phoneHome")
    )

    assert result["connect"].startswith("EgressRefused") and "192.0.2.1" in result["connect"]
    assert (
        result["lookup"].startswith("EgressRefused") and "telemetry.example.com" in result["lookup"]
    )
    assert "the administrator's policy allow-lists (none)" in result["connect"]
    seen = events(PLANT_LOG)
    # The watcher saw both attempts (so it does see what a session would do) ...
    attempted = reaching_out(seen)
    assert any(e["event"] == "socket.connect" and "192.0.2.1" in e["args"] for e in attempted)
    assert any(
        e["event"] == "socket.getaddrinfo" and "telemetry.example.com" in e["args"]
        for e in attempted
    )
    # ... and the guard stopped them before the backstop had to.
    assert not [e for e in seen if e["kind"] == "leaked"]


@pytest.mark.skipif(scan_workers() < 2, reason="one core: the index is read in the server")
async def test_the_index_worker_processes_attempt_no_connection_either(
    large: LanguageClient, tmp_path: Path
):
    files = PARALLEL_MIN_FILES + 10
    shutil.rmtree(LARGE, ignore_errors=True)
    (LARGE / "src").mkdir(parents=True)
    for n in range(files):
        (LARGE / "src" / f"unit_{n:03}.ads").write_text(
            f"package Unit_{n:03} is\n   procedure Step_{n:03};\nend Unit_{n:03};\n"
        )
    await start_indexed(large, tmp_path / "audit.jsonl", workspace=LARGE)
    found = await large.workspace_symbol_async(
        types.WorkspaceSymbolParams(query=f"step_{files - 1:03}")
    )
    assert [s.name for s in found or []] == [f"Step_{files - 1:03}"]
    await large.shutdown_session()

    seen = events(LARGE_LOG)
    (server,) = {e["pid"] for e in seen if e["kind"] == "start" and e["args"] == "(True,)"}
    workers = {e["pid"] for e in seen if e["kind"] == "start" and e["args"] == "(False,)"}
    reads = [e for e in seen if e["kind"] == "opened" and ".ads" in e["args"]]
    readers = {e["pid"] for e in reads}
    # The files were read by worker processes (one per core started; which of them reads
    # how many chunks is a race: one may read them all before the other has started), not
    # the server ...
    assert len(workers) >= 2 and server not in workers, (server, workers)
    assert readers and readers <= workers, (server, workers, readers)
    # ... each with the egress guard in place before it opened a file (the guard the server
    # gives its workers: netwatch installs none in a worker) ...
    assert all(e["args"].endswith(", True)") for e in reads), [e for e in reads][:3]
    # ... and nothing reached out.
    assert reaching_out(seen) == [], reaching_out(seen)
    assert not [e for e in seen if e["kind"] == "leaked"]
