"""A server pointed at a model that fails its checks says so and suggests nothing."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from inference.store import ModelStore
from tests.conftest import cursor_file, save_tiny_checkpoint
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc, start

pytestmark = pytest.mark.e2e

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
    server_command=[sys.executable, "-m", "lsp_server", "serve"],
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
