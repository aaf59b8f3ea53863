"""A model whose chat template would run for hours (nested `range` loops) does not freeze the
server: its render stops at its step bound, a `documentSymbol` asked meanwhile is answered, and
the hover answers with the index's part and why the explanation was withheld; a code action says
the same and what to do.

The model is the `babble_model`'s random-weights checkpoint with that template, in the same store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types

from inference.store import ModelStore
from tests.conftest import BABBLE_STORE, save_random_checkpoint
from tests.e2e.harness import Editor, bounded, completion_params
from tests.e2e.test_hover_actions import WORKSPACE, actions_at, open_file, position_of

pytestmark = pytest.mark.e2e

# Ten billion empty loop steps, then the default model's ChatML: a sane render would follow.
RUNAWAY = (
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def runaway_model(default_model, babble_model: str, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """A random-weights checkpoint with the RUNAWAY chat template, imported into the babble
    store (which `babble_model` makes and removes)."""
    source = save_random_checkpoint(default_model.path, tmp_path_factory.mktemp("runaway"))
    (source / "chat_template.jinja").write_text(RUNAWAY, encoding="utf-8")
    return ModelStore(BABBLE_STORE).import_model(source, name="runaway-template", version="1").ref


async def test_a_runaway_chat_template_neither_blocks_the_server_nor_goes_unexplained(
    tmp_path: Path, runaway_model: str
):
    editor = Editor("editor")
    try:
        await editor.start(
            tmp_path / "audit.jsonl",
            WORKSPACE,
            runaway_model,
            hover={"timeBudgetMs": 1000},
            maxTokensLine=8,
            maxTokensBlock=16,
        )
        client = editor.client
        uri, text = open_file(client, "src/autopilot.adb")
        # A completion first (no chat template in it) puts the open document in the index, so
        # the hover goes straight to its prompt.
        await bounded(
            editor.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, completion_params(uri, 9, 0), "c"),
            "a completion",
        )
        document = types.TextDocumentIdentifier(uri=uri)
        replies: list[str] = []

        def sent(method: str, params: object, msg_id: str) -> asyncio.Future[object]:
            reply = client.protocol.send_request(method, params, msg_id=msg_id)
            reply.add_done_callback(lambda _: replies.append(msg_id))  # in the order they come
            return asyncio.wrap_future(reply)

        hover = sent(
            types.TEXT_DOCUMENT_HOVER,
            types.HoverParams(
                text_document=document, position=position_of(text, "Clamp (Requested)", 2)
            ),
            "hover",
        )
        symbols = sent(
            types.TEXT_DOCUMENT_DOCUMENT_SYMBOL,
            types.DocumentSymbolParams(text_document=document),
            "documentSymbol",
        )

        outline = await bounded(symbols, "documentSymbol while a hover renders its prompt")
        shown = await bounded(hover, "the hover over a model with a runaway chat template")

        # (Which reply comes first is not asserted: the step bound stops this render within
        # about 50 ms, as fast as the outline is made, so either order is the server working.)
        assert sorted(replies) == ["documentSymbol", "hover"]
        assert outline, "the outline of src/autopilot.adb"
        assert isinstance(shown, types.Hover) and isinstance(shown.contents, types.MarkupContent)
        index_part, explanation = shown.contents.value.split("\n\n---\n\n")
        assert "function Clamp (Requested : Feet) return Feet" in index_part
        assert "Explanation withheld" in explanation and "chat template" in explanation
        assert "airgap-lsp model import" in explanation

        # A code action resolves to no change, and the user is told why and what to do.
        actions = await bounded(
            actions_at(client, uri, position_of(text, "Hold (Target)")), "code actions"
        )
        resolved = await bounded(
            client.code_action_resolve_async(actions["Explain this code"]), "Explain this code"
        )
        assert resolved.command is None and resolved.edit is None
        told = await bounded(editor.watch.message("chat template"), "the message to the user")
        assert told.type == types.MessageType.Error
        assert "airgap-lsp model import" in told.message and "Traceback" not in told.message
        assert await editor.stop() == 0  # the render stopped at its bound: nothing holds the exit
    finally:
        editor.kill()  # a server that hung: its failure above is the test's
