"""The administrator's policy in a real session: it refuses a model and fixes the audit log."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
from inference.store import ModelStore
from tests.conftest import cursor_file
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc, start

pytestmark = pytest.mark.e2e

# The server reads its policy when it starts, so the files exist before any server does.
HERE = Path(tempfile.mkdtemp(prefix="airgap-policy-"))
POLICY_AUDIT = HERE / "site-audit.jsonl"
_REGISTERED = {f"{n}@{v}": d for n, v, d in ModelStore(model_store_root()).models()}
_VERSION = next((r.split("@")[1] for r in _REGISTERED if r.startswith(DEFAULT_MODEL)), "0")
_SHA = _REGISTERED.get(f"{DEFAULT_MODEL}@{_VERSION}", "0" * 64)


def _policy(name: str, sha: str) -> Path:
    path = HERE / name
    path.write_text(
        "[models]\n"
        "allowed = [\n"
        f'  {{ name = "{DEFAULT_MODEL}", version = "{_VERSION}", sha256 = "{sha}" }},\n'
        "]\n\n"
        "[audit]\n"
        f'path = "{POLICY_AUDIT}"\n'
    )
    return path


REFUSING = _policy("refusing.toml", "f" * 64)
ALLOWING = _policy("allowing.toml", _SHA)


def _config(policy: Path) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=[sys.executable, "-m", "airgap_lsp", "serve"],
        server_env={**os.environ, "AIRGAP_LSP_POLICY": str(policy)},
    )


@pytest_lsp.fixture(config=_config(REFUSING))
async def refusing(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=_config(ALLOWING))
async def allowing(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def test_a_model_outside_the_policy_is_refused_naming_the_policy(
    refusing: LanguageClient, tmp_path: Path
):
    await start(refusing, tmp_path / "mine.jsonl")
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(refusing, doc, "ada")

    with pytest.raises(Exception, match=rf"policy \({REFUSING}:3\) does not allow"):
        await complete(refusing, uri, doc)


async def test_the_policy_fixes_where_the_audit_goes(allowing: LanguageClient, tmp_path: Path):
    mine = tmp_path / "mine.jsonl"
    await start(allowing, mine)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(allowing, doc, "ada")
    before = len(audit_lines(POLICY_AUDIT))

    texts = await complete(allowing, uri, doc)

    assert texts
    assert not mine.exists()  # the user's auditPath was overridden ...
    assert len(audit_lines(POLICY_AUDIT)) == before + 1  # ... by the site's log
    warnings = [m.message for m in allowing.messages if m.type == types.MessageType.Warning]
    assert any("auditPath is fixed" in w and str(ALLOWING) in w for w in warnings), warnings

    # A later change that does not touch it is not told of it again: it was told once.
    allowing.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"maxTokensLine": 20})
    )
    assert await complete(allowing, uri, doc)  # answered after the change (messages in order)
    warnings = [m.message for m in allowing.messages if m.type == types.MessageType.Warning]
    assert sum("auditPath is fixed" in w for w in warnings) == 1, warnings
