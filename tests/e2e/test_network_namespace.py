"""No way out, proven by the kernel: a whole session inside a network namespace with no route out
(`unshare -rn`) works exactly as it does outside.

The audit-hook tests in test_no_way_out.py see what Python's socket layer does. Here nothing can
get out whatever opens the socket, so a dependency that needed the network, even through native
code, would make this session differ from the one outside or fail.
"""

from __future__ import annotations

import errno
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import FIXTURES, cursor_file
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import Watch, actions_at, position_of
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc

WORKSPACE = FIXTURES / "context"
SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
NO_NETWORK = ["unshare", "--user", "--map-root-user", "--net"]
# Deterministic on a shared machine: no time budget cuts the hover short, few tokens each.
OPTIONS: dict[str, Any] = {
    # A fixed thread count: the engine takes one fewer while another process keeps a core busy
    # (the other session's server, still indexing), and the count orders the arithmetic and is
    # in the audit line.
    "decoding": {"threads": 2},
    "maxTokensLine": 16,
    "hover": {"maxTokens": 24, "timeBudgetMs": 120_000},
    "codeActions": {"maxTokens": 48},
}
# What only the moment and the process change between two otherwise identical sessions.
AUDIT_ID = re.compile(r"audit id `?[0-9a-f-]+`?")
PER_RUN = {"id", "time", "prev_sha256", "timings", "pid"}

pytestmark = pytest.mark.e2e

PROBE = """
import errno, socket
try:
    socket.create_connection(("192.0.2.1", 9), timeout=5)
except OSError as exc:
    print(exc.errno)
else:
    print("connected")
"""


def no_route_out() -> int | str:
    """What a connection attempt from inside the namespace gets: an errno, or 'connected'."""
    if shutil.which("unshare") is None:
        pytest.fail("`unshare` (util-linux) is needed to run a session with no network")
    probe = subprocess.run(
        [*NO_NETWORK, sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        pytest.fail(
            "This machine refuses unprivileged network namespaces (`unshare --user --net`): "
            f"{probe.stderr.strip()}. Enable user namespaces (kernel.unprivileged_userns_clone=1, "
            "or the distribution's AppArmor setting) to run this test."
        )
    out = probe.stdout.strip()
    return int(out) if out.isdigit() else out


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def outside(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[*NO_NETWORK, *SERVER]))
async def inside(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield


async def session(client: LanguageClient, audit: Path) -> dict[str, Any]:
    """Start, index, complete, hover, code action, shut down: what the user sees of each."""
    watch = Watch(client)
    await start_indexed(client, audit, WORKSPACE, **OPTIONS)
    status = await watch.model_ready()
    doc = cursor_file("context/src/autopilot.adb")
    uri = open_doc(client, doc, "ada")

    completion = await complete(client, uri, doc)
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(doc.text, "Feet;", 1),
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    actions = await actions_at(client, uri, position_of(doc.text, "Target := "))
    refactor = await client.code_action_resolve_async(actions["Suggest a refactor"])
    await client.shutdown_session()

    edits = refactor.edit.changes if refactor.edit and refactor.edit.changes else {}
    return {
        "model": {k: status.get(k) for k in ("model", "version", "device", "dtype")},
        "completion": completion,
        "hover": AUDIT_ID.sub("audit id …", hover.contents.value),
        "actions": sorted(actions),
        "refactor": {u: [e.new_text for e in es] for u, es in edits.items()},
        "audit": [
            {k: v for k, v in r.items() if k not in PER_RUN} for r in audit_lines(audit, kind=None)
        ],
    }


async def test_a_whole_session_in_a_namespace_with_no_route_out_works_as_outside(
    outside: LanguageClient, inside: LanguageClient, tmp_path: Path, default_model
):
    # Inside, the kernel has no route to anything: the namespace has a loopback device, down.
    assert no_route_out() == errno.ENETUNREACH

    seen_outside = await session(outside, tmp_path / "outside.jsonl")
    seen_inside = await session(inside, tmp_path / "inside.jsonl")

    # The session did real work: the model answered each request and every answer was audited.
    assert seen_outside["completion"] and seen_outside["completion"][0].strip()
    assert "Explained by" in seen_outside["hover"]
    assert {"Suggest a refactor", "Explain this code"} <= set(seen_outside["actions"])
    kinds = [r["kind"] for r in seen_outside["audit"]]
    # (the completion was shown and never accepted: closing the session says so)
    assert kinds == ["inline_completion", "hover", "code_action.refactor", "not_accepted"], kinds
    # And the session with no network did the same, to the token.
    assert seen_inside == seen_outside
