"""A model whose proposal does not parse: the edit is withheld, the user told, the line audited;
an inline suggestion that does not parse is asked for again, then not shown.

The model is `babble_model` (tests/conftest.py): the default model's architecture and tokenizer
with random weights, which writes fluent nonsense, never code that parses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.features.inline_completion import ASK_AGAIN, STATS
from tests.conftest import BABBLE_STORE, cursor_file
from tests.e2e.test_hover_actions import actions_at, open_file, position_of, start
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc

pytestmark = pytest.mark.e2e


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "airgap_lsp", "serve"],
        server_env={**os.environ, "AIRGAP_LSP_MODEL_STORE": str(BABBLE_STORE)},
    )
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def test_a_refactor_that_does_not_parse_is_not_offered(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit, model=babble_model)
    await watch.model_ready()
    uri, text = open_file(client, "tools/limits.py")
    actions = await actions_at(client, uri, position_of(text, "if value < low"))

    resolved = await client.code_action_resolve_async(actions["Suggest a refactor"])

    assert resolved.edit is None and resolved.command is None
    rec = audit_lines(audit, kind="code_action.refactor")[-1]
    assert rec["result"]["outcome"] == "withheld: does not parse"
    assert rec["result"]["parses"] is False and rec["result"]["new_text"].strip()
    message = await watch.message(rec["id"])
    assert "the model's proposal did not parse" in message.message
    assert audit_lines(audit, kind="accept") == []


async def test_contracts_that_do_not_parse_are_not_offered(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = tmp_path / "audit.jsonl"
    watch = await start(client, audit, model=babble_model)
    await watch.model_ready()
    uri, text = open_file(client, "src/altitude.ads")
    actions = await actions_at(client, uri, position_of(text, "Climb"))

    resolved = await client.code_action_resolve_async(actions["Suggest SPARK contracts"])

    assert resolved.edit is None
    rec = audit_lines(audit, kind="code_action.spark_contracts")[-1]
    assert rec["result"]["outcome"] == "withheld: does not parse", rec["result"]
    await watch.message(rec["id"])


async def test_a_suggestion_that_never_parses_is_asked_again_then_not_shown(
    client: LanguageClient, tmp_path: Path, babble_model: str
):
    audit = tmp_path / "audit.jsonl"
    # One short line a suggestion: three asks fit in the time the server allows them.
    watch = await start(client, audit, model=babble_model, multiline="never", maxTokensLine=16)
    await watch.model_ready()
    doc = cursor_file("completion/stacks.adb")  # an empty line in a body that parses
    uri = open_doc(client, doc, "ada")

    texts = await complete(client, uri, doc)

    assert texts == []
    stats = await client.workspace_execute_command_async(types.ExecuteCommandParams(command=STATS))
    # Each answer broke the parse: the model was asked twice more, each time refused the
    # starts it wrote before, and the stats say why nothing came.
    assert stats["generations"] == 1 + ASK_AGAIN and stats["asked_again"] == ASK_AGAIN, stats
    assert stats["withheld"] == 1 and stats["wrote_nothing"] == 0, stats
    assert audit_lines(audit) == []  # nothing shown, nothing audited as shown
