"""A fault of the server's own while it indexes (not a file the parser fails on: those are left out
one by one) is said, in the index's progress and a message, and completions go on with what was
done before it. The faults come from the test gates of faultgate.py, set by the environment."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import FIXTURES, cursor_file
from tests.e2e.test_context import sources, start_indexed
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc
from tests.e2e.test_killed_server import GATED, WAIT_S, served

WORKSPACE = FIXTURES / "context"

pytestmark = pytest.mark.e2e


def index_end(client: object) -> str:
    ends = [
        r.message or ""
        for rs in client.progress_reports.values()  # type: ignore[attr-defined]
        for r in rs
        if isinstance(r, types.WorkDoneProgressEnd) and "indexed" in (r.message or "")
    ]
    assert len(ends) == 1, ends
    return ends[0]


def warnings(client: object) -> list[str]:
    return [
        m.message
        for m in client.messages  # type: ignore[attr-defined]
        if m.type == types.MessageType.Warning
    ]


@pytest.mark.parametrize(
    ("gate", "said"),
    [
        ("scan", "2 files indexed in"),
        ("rankers", "4 files indexed in"),
    ],
)
async def test_a_failing_index_is_said_and_completions_go_on(
    tmp_path: Path, gate: str, said: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    failure = {
        "scan": "the scan stopped (RuntimeError): files it had not read are not indexed",
        "rankers": "similar code is left out of prompts (RuntimeError)",
    }[gate]
    env = {**os.environ, "AIRGAP_TEST_BREAK": gate}
    async with served(GATED, env=env) as client:
        await asyncio.wait_for(start_indexed(client, audit, WORKSPACE), WAIT_S)
        end = index_end(client)
        assert said in end and end.endswith(failure), end
        shown = [m for m in warnings(client) if failure in m]
        assert len(shown) == 1 and "Completions go on" in shown[0], warnings(client)

        doc = cursor_file("context/src/autopilot.adb")
        uri = open_doc(client, doc, "ada")
        texts = await asyncio.wait_for(complete(client, uri, doc), WAIT_S)

    assert texts and texts[0].strip(), texts
    record = audit_lines(audit)[-1]
    if gate == "rankers":
        # The rest of the context is there: the withed spec, from the index.
        assert "src/flight_limits.ads" in sources(record)
