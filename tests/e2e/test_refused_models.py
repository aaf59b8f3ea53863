"""A server pointed at a model that fails its checks, or passes them and then fails to load, says
so, answers every request with the reason, suggests nothing, and recovers when the settings name
a model that loads."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from audit.verify import verify_chain
from inference.store import ModelStore
from tests.conftest import cursor_file, save_random_checkpoint, save_tiny_checkpoint
from tests.e2e.test_hover_actions import actions_at, open_file, position_of
from tests.e2e.test_hover_actions import start as start_actions
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc, start

pytestmark = pytest.mark.e2e
T = TypeVar("T")

# The server reads its store from the environment it starts with; the store is filled by the
# fixture below, before the test asks the server to load the model.
TAMPERED_STORE = Path(tempfile.mkdtemp(prefix="airgap-tampered-store-"))


@pytest.fixture(scope="module")
def tampered_store() -> Path:
    """A tiny checkpoint imported into its own store, then one byte of its weights flipped."""
    source = save_tiny_checkpoint(TAMPERED_STORE.parent / (TAMPERED_STORE.name + "-src"))
    stored = ModelStore(TAMPERED_STORE).import_model(source, name="tiny", version="1")
    weights = stored.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    return TAMPERED_STORE


CONFIG = ClientServerConfig(
    server_command=[sys.executable, "-m", "airgap_lsp", "serve"],
    server_env={**os.environ, "AIRGAP_LSP_MODEL_STORE": str(TAMPERED_STORE)},
)


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def test_a_tampered_model_is_refused_with_a_clear_error(
    client: LanguageClient, tmp_path: Path, tampered_store: Path
):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit, model="tiny@1")
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    with pytest.raises(Exception, match="model.safetensors of tiny@1 does not match") as caught:
        await complete(client, uri, doc)

    assert "re-import" in str(caught.value)
    assert any("does not match its manifest" in m.message for m in client.messages)
    assert audit_lines(audit, kind=None) == []


# -- a model that passes its checks but cannot be loaded ------------------------------------------
@pytest.fixture(scope="module")
def unloadable(default_model) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Models in the module's store that pass every check of the store, made of one small
    random-weights checkpoint with the default model's tokenizer: "cut" had its weights file cut
    in half before its import (a copy that stopped early, so its hashes are the cut file's),
    "config" a config.json value of the wrong type, and "whole" is the checkpoint as saved.
    Made like `babble_model`, into a store of its own."""
    import json

    made = Path(tempfile.mkdtemp(prefix="airgap-unloadable-src-"))
    whole = save_random_checkpoint(default_model.path, made / "whole")
    cut, wrong = shutil.copytree(whole, made / "cut"), shutil.copytree(whole, made / "config")
    weights = (whole / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    doc = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps(doc | {"num_hidden_layers": "one"}))
    store = ModelStore(TAMPERED_STORE)
    return {
        "cut": store.import_model(cut, name="cut-short", version="1").ref,
        "config": store.import_model(wrong, name="wrong-config", version="1").ref,
        "whole": store.import_model(whole, name="random-weights", version="1").ref,
    }


async def answer(request: Awaitable[T]) -> T:
    """A reply, or the test fails: a server that hangs is no better than one that died."""
    return await asyncio.wait_for(request, 120)


def inline_at(uri: str, where: types.Position) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=where,
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )


def hover_at(uri: str, where: types.Position) -> types.HoverParams:
    return types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=where)


def command(client: LanguageClient, name: str, *arguments: Any) -> Awaitable[Any]:
    return client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=list(arguments))
    )


async def test_a_model_that_fails_to_load_answers_every_request_until_one_that_loads_is_set(
    client: LanguageClient, tmp_path: Path, unloadable: dict[str, str]
):
    cut_short, whole = unloadable["cut"], unloadable["whole"]
    audit = tmp_path / "audit.jsonl"
    watch = await start_actions(client, audit, model=cut_short)

    status = await answer(watch.until_status("error", "ready"))
    assert status["state"] == "error" and cut_short in status["message"], status
    told = await answer(watch.message(f"cannot load the model {cut_short}"))
    assert told.type == types.MessageType.Error
    reason = told.message.split(f"cannot load the model {cut_short}: ", 1)[1]
    assert "incomplete" in reason and "re-import" in reason, reason
    loading = [
        rs
        for rs in client.progress_reports.values()
        if rs and getattr(rs[0], "title", "").endswith(f"loading {cut_short}")
    ]
    assert loading and all(isinstance(rs[-1], types.WorkDoneProgressEnd) for rs in loading)

    uri, text = open_file(client, "tools/limits.py")
    where, name = position_of(text, "value < low"), position_of(text, "clamp")
    with pytest.raises(JsonRpcException, match=f"airgap-lsp: .*{cut_short}.*incomplete"):
        await answer(client.text_document_inline_completion_async(inline_at(uri, where)))
    shown = await answer(client.text_document_hover_async(hover_at(uri, name)))
    assert shown is not None and isinstance(shown.contents, types.MarkupContent)
    assert "def clamp(value, low, high):" in shown.contents.value
    assert f"No explanation: the model {cut_short} could not be loaded" in shown.contents.value
    actions = await answer(actions_at(client, uri, where))
    assert set(actions) == {"Suggest a refactor", "Explain this code"}
    for action in actions.values():
        with pytest.raises(JsonRpcException, match=f"{cut_short}.*incomplete"):
            await answer(client.code_action_resolve_async(action))
    with pytest.raises(JsonRpcException, match="No suggestion has been made in this session"):
        await answer(command(client, "airgap.auditRecord"))
    assert audit_lines(audit, kind=None) == []  # nothing was suggested, nothing audited
    # An accept needs no model: the editor's claim is logged, as for any suggestion not pending.
    assert await answer(command(client, "airgap.accept", "never-shown")) == {
        "accepted": "never-shown"
    }
    assert [(r["kind"], r["id"]) for r in audit_lines(audit, kind=None)] == [
        ("accept", "never-shown")
    ]

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"airgap": {"model": whole}})
    )

    ready = await answer(watch.until_status("ready"))
    assert ready["model"] == whole.split("@")[0]
    texts = await answer(client.text_document_inline_completion_async(inline_at(uri, where)))
    assert isinstance(texts, types.InlineCompletionList)  # an answer, not an error
    assert len(audit_lines(audit)) == len(texts.items)  # random weights: shown only if audited
    shown = await answer(client.text_document_hover_async(hover_at(uri, name)))
    assert shown is not None and isinstance(shown.contents, types.MarkupContent)
    hover_line = audit_lines(audit, kind="hover")[-1]
    assert f"Explained by {whole}" in shown.contents.value
    assert hover_line["id"] in shown.contents.value
    explained = await answer(client.code_action_resolve_async(actions["Explain this code"]))
    assert explained.command is not None
    shown_id = explained.command.arguments[0]["id"]
    recorded = await answer(command(client, "airgap.auditRecord", shown_id))
    assert (
        recorded["kind"] == "code_action.explain" and recorded["model"]["name"] == "random-weights"
    )
    assert verify_chain(audit).ok


async def test_a_load_that_fails_in_an_unforeseen_way_is_reported_not_left_loading(
    client: LanguageClient, tmp_path: Path, unloadable: dict[str, str]
):
    wrong = unloadable["config"]
    audit = tmp_path / "audit.jsonl"
    watch = await start_actions(client, audit, model=wrong)

    status = await answer(watch.until_status("error", "ready"))

    assert status["state"] == "error" and "num_hidden_layers" in status["message"], status
    told = await answer(watch.message(f"cannot load the model {wrong}"))
    assert "num_hidden_layers" in told.message and "server's log" in told.message
    uri, text = open_file(client, "tools/limits.py")
    with pytest.raises(JsonRpcException, match="airgap-lsp: .*num_hidden_layers"):
        await answer(
            client.text_document_inline_completion_async(
                inline_at(uri, position_of(text, "value < low"))
            )
        )
    assert audit_lines(audit, kind=None) == []
