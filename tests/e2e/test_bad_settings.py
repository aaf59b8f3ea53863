"""Settings of the wrong type, from the editor at start-up and later: the user is told what is
wrong, the last good settings stay in force, and the server keeps serving."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from airgap_lsp.paths import model_store_root
from tests.conftest import cursor_file
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines, client, complete, open_doc, start

pytestmark = pytest.mark.e2e
__all__ = ["client"]  # the real server over stdio, from the completion tests

# A home of its own for the server that falls back to its defaults (the audit log among them),
# with the real model store.
HOME = Path(tempfile.mkdtemp(prefix="airgap-home-"))


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "airgap_lsp", "serve"],
        server_env={
            **os.environ,
            "AIRGAP_LSP_HOME": str(HOME),
            "AIRGAP_LSP_MODEL_STORE": str(model_store_root()),
        },
    )
)
async def fresh(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


BAD = {
    "maxTokensLine": "many",
    "multiline": 3,
    "hover": {"explain": "yes", "timeBudgetMs": -5},
    "context": {"exclude": "secrets/"},
    "noSuchSetting": True,
}


# Every problem in BAD, as the message names it.
PROBLEMS = (
    "maxTokensLine",
    "multiline",
    "hover.explain",
    "hover.timeBudgetMs",
    "context.exclude",
    "noSuchSetting",
)


async def test_bad_settings_at_start_up_are_named_and_the_defaults_serve(
    fresh: LanguageClient, tmp_path: Path, default_model
):
    client = fresh
    audit = tmp_path / "audit.jsonl"
    watch = Watch(client)
    await start(client, audit, **BAD)

    shown = await watch.message("kept its previous settings")
    assert shown.type == types.MessageType.Error
    assert [p for p in PROBLEMS if p not in shown.message] == []
    assert "'many'" in shown.message and "between 100 and 120000" in shown.message
    # The whole set was refused, the good part too (the audit path): the defaults serve.
    await watch.model_ready()
    doc = cursor_file("completion/sensors.adb")
    assert await complete(client, open_doc(client, doc, "ada"), doc)
    assert not audit.exists()  # the audit path was in the refused set ...
    assert len(audit_lines(HOME / "audit" / "audit.jsonl")) == 1  # ... so the default one serves


async def test_a_bad_change_keeps_the_last_good_settings(
    client: LanguageClient, tmp_path: Path, default_model
):
    audit = tmp_path / "audit.jsonl"
    watch = Watch(client)
    await start(client, audit, maxTokensLine=4)
    await watch.model_ready()

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"airgap": {"auditPath": str(audit), "maxTokensLine": 4.5, "model": ""}}
        )
    )
    shown = await watch.message("kept its previous settings")
    assert "maxTokensLine must be a whole number, not 4.5" in shown.message
    assert "model must name a stored model" in shown.message

    doc = cursor_file("completion/sensors.adb")
    assert await complete(client, open_doc(client, doc, "ada"), doc)
    rec = audit_lines(audit)[-1]
    assert rec["decoding"]["max_new_tokens"] == 4  # the last good value, not the default 48
