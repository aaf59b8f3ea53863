"""A setting that a `workspace/didChangeConfiguration` leaves out, end to end: it goes back to
the value `initializationOptions` gave it, else to its default, never to the value an earlier
change gave it; a `null` change changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import cursor_file
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines, client, complete, open_doc, start

pytestmark = pytest.mark.e2e
__all__ = ["client"]  # the real server over stdio, from the completion tests


def change(client: LanguageClient, settings: Any) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


async def test_a_setting_a_change_leaves_out_goes_back_to_its_default(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = Watch(client)
    # Given at start-up only, as the editor never sends them again: the audit path and this.
    await start(client, audit, multiline="never")
    await watch.model_ready()
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    change(client, {"airgap": {"maxTokensLine": 5}})
    change(client, None)  # says nothing: the 5 stays
    assert await complete(client, uri, doc)
    change(client, {"airgap": {"hover": {"explain": True}}})  # maxTokensLine removed
    assert await complete(client, uri, doc)

    # Both lines in the audit log initializationOptions named, both single-line as it asked.
    first, second = audit_lines(audit)
    assert [r["decoding"]["multiline"] for r in (first, second)] == [False, False]
    assert first["decoding"]["max_new_tokens"] == 5
    assert second["decoding"]["max_new_tokens"] == 48  # the default, not the first change's 5
