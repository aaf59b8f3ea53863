"""Exclusions a user's or a workspace's settings cannot undo: the built-in secret list and the
administrator's policy hold whatever `context.exclude` says, in a real session over stdio."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from tests.conftest import CURSOR, CursorFile
from tests.e2e.harness import bounded
from tests.e2e.test_context import indexed, sources, start_indexed
from tests.e2e.test_inline_completion import audit_lines, complete, open_doc

pytestmark = pytest.mark.e2e

KEY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ-the-deploy-key"
FILES = {
    # A private key by mistake in a file whose name the built-in list excludes (*secret*).
    "my_secret.py": f'DEPLOY_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY}\n"""\n',
    # A folder the administrator's policy excludes.
    "classified/targets.py": "def target_list() -> list[str]:\n    return ['CLASSIFIED-TARGETS']\n",
    # A file nothing excludes: its definition shows that context reaches the prompt here.
    "signing.py": "def sign_release(key: str, blob: bytes) -> bytes:\n    return blob\n",
    "app.py": (
        "from classified.targets import target_list\n"
        "from my_secret import DEPLOY_KEY\n"
        "from signing import sign_release\n\n\n"
        "def deploy(blob: bytes) -> bytes:\n"
        "    targets = target_list()\n"
        f"    return sign_release(DEPLOY_KEY, {CURSOR}\n"
    ),
}
UNDO = ["!**", "!my_secret.py", "!*secret*", "!classified/", "!classified/**", "!.env"]


def workspace(root: Path) -> Path:
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def at_cursor(path: Path) -> CursorFile:
    raw = path.read_text(encoding="utf-8")
    path.write_text(raw.replace(CURSOR, ""), encoding="utf-8")
    before = raw[: raw.index(CURSOR)]
    column = before[before.rfind("\n") + 1 :]
    return CursorFile(path, raw.replace(CURSOR, ""), before.count("\n"), len(column))


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[LanguageClient, Path, Path]]:
    """A server under a policy that excludes `classified/**`, on the workspace above."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[context]\nexclude = ["classified/**"]\n')
    root = workspace(tmp_path / "ws")
    client = make_test_lsp_client()
    env = {**os.environ, "AIRGAP_LSP_POLICY": str(policy)}
    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve", env=env)
    try:
        yield client, root, tmp_path / "audit.jsonl"
    finally:
        await bounded(client.shutdown_session(), "shutdown")


def assert_nothing_excluded_was_read(audit: Path) -> None:
    rec = audit_lines(audit)[-1]
    assert "signing.py" in sources(rec)  # context reaches the prompt from a file not excluded
    assert not [p for p in sources(rec) if "secret" in p or "classified" in p], sources(rec)
    assert KEY not in rec["prompt"] and "CLASSIFIED-TARGETS" not in rec["prompt"]
    assert KEY not in audit.read_text(encoding="utf-8")


async def test_a_users_negated_patterns_take_back_neither_the_secret_list_nor_the_policy(
    session: tuple[LanguageClient, Path, Path],
) -> None:
    client, root, audit = session
    await bounded(start_indexed(client, audit, root, context={"exclude": UNDO}), "start-up", 180)
    doc = at_cursor(root / "app.py")
    uri = open_doc(client, doc, "python")

    await bounded(complete(client, uri, doc), "a completion")
    assert_nothing_excluded_was_read(audit)

    # The same through didChangeConfiguration (a workspace's settings reach the server so),
    # which indexes the workspace again under the new rules.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"context": {"exclude": ["*.log", *UNDO]}})
    )
    await bounded(indexed(client, times=2), "indexing again")
    await bounded(complete(client, uri, doc), "a completion")
    assert len(audit_lines(audit)) == 2
    assert_nothing_excluded_was_read(audit)

    # A file the policy excludes is not completed at all, whatever the user's patterns say.
    target = root / "classified" / "targets.py"
    inside = CursorFile(target, target.read_text(encoding="utf-8"), 1, 4)
    inside_uri = open_doc(client, inside, "python")
    assert await bounded(complete(client, inside_uri, inside), "a completion") == []
    assert len(audit_lines(audit)) == 2
