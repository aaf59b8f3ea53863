"""Accept and replay end to end: the editor's accept command, the not-accepted events, and a
replay of the logged suggestion on the same locked model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import cursor_file
from tests.e2e.test_inline_completion import audit_lines, open_doc, start

pytestmark = pytest.mark.e2e


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "airgap_lsp", "serve"])
)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    yield
    await lsp_client.shutdown_session()


async def items(client: LanguageClient, uri: str, line: int, character: int):  # type: ignore[no-untyped-def]
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    return result.items if isinstance(result, types.InlineCompletionList) else result


async def test_accept_then_replay(client: LanguageClient, tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    await start(client, audit)
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    first = (await items(client, uri, doc.line, doc.character))[0]
    second = (await items(client, uri, doc.line, doc.character))[0]
    assert second.command is not None and second.command.command == "airgap.accept"
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="airgap.accept", arguments=second.command.arguments)
    )

    lines = audit_lines(audit, kind=None)
    shown = [r for r in lines if r["kind"] == "inline_completion"]
    events = [(r["kind"], r["id"]) for r in lines if r["kind"] != "inline_completion"]
    first_id, second_id = (r["id"] for r in shown)
    # What prompt lookup drafted from besides the prompt, for replay to draft from the same.
    for r in shown:
        drafts = r["decoding"]["drafts_from"]
        assert isinstance(drafts, list) and all(isinstance(t, int) for t in drafts), r
    assert list(first.command.arguments) == [first_id]
    # The first was replaced by the second without being accepted; the second was accepted.
    assert events == [("not_accepted", first_id), ("accept", second_id)]
    not_accepted = next(r for r in lines if r["kind"] == "not_accepted")
    assert not_accepted["reason"] == "replaced" and not_accepted["file"] == uri

    replay = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", "replay", second_id, "--log", str(audit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "SAME text" in replay.stdout
    assert repr(shown[1]["text"]) in replay.stdout

    # The report counts the acceptance; provenance marks the accepted text in a real diff.
    cli = [sys.executable, "-m", "airgap_lsp"]
    report = subprocess.run(
        [*cli, "audit", "report", "--json", "--log", str(audit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    summary = json.loads(report.stdout)
    assert summary["suggestions"] == 2
    assert summary["outcome"] == {"accepted": 1, "not accepted": 1}
    assert summary["by"]["language"]["ada"] == {"suggested": 2, "accepted": 1}
    diff = git_diff_with(tmp_path / "repo", doc, shown[1]["text"])
    prov = subprocess.run(
        [*cli, "provenance", "-", "--log", str(audit), "--require-accepted"],
        input=diff,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prov.returncode == 0, prov.stdout + prov.stderr
    assert f"completion/sensors.adb:{doc.line + 1}" in prov.stdout
    assert second_id in prov.stdout and "(accepted)" in prov.stdout

    # The log the session wrote verifies; an edited line is found and named.
    verify = [sys.executable, "-m", "airgap_lsp", "audit", "verify", "--log", str(audit)]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and f"{len(lines)} lines" in ok.stdout, ok.stdout + ok.stderr
    raw = audit.read_text(encoding="utf-8").split("\n")
    raw[1] = raw[1].replace(shown[1]["text"].replace('"', '\\"'), "return 42;")
    assert raw[1] != audit.read_text(encoding="utf-8").split("\n")[1]
    audit.write_text("\n".join(raw), encoding="utf-8")
    broken = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "first broken line: 3" in broken.stdout, broken.stdout


def git_diff_with(repo: Path, doc, suggestion: str) -> str:  # type: ignore[no-untyped-def]
    """`git diff` of the fixture file after the user accepted `suggestion` at its cursor."""
    target = repo / "completion" / "sensors.adb"
    target.parent.mkdir(parents=True)
    lines = doc.text.split("\n")
    target.write_text("\n".join(lines[: doc.line] + lines[doc.line + 1 :]))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "before"], check=True)
    typed = lines[doc.line][: doc.character]
    target.write_text("\n".join([*lines[: doc.line], typed + suggestion, *lines[doc.line + 1 :]]))
    return subprocess.run([*git, "diff"], check=True, capture_output=True, text=True).stdout


async def test_replay_refuses_a_different_model(tmp_path: Path, default_model):
    record = {
        "id": "x",
        "kind": "inline_completion",
        "prompt": "with Ada;",
        "text": "x",
        "model": {
            "name": default_model.manifest.name,
            "version": default_model.manifest.version,
            "manifest_sha256": "0" * 64,
        },
        "device": "cpu",
        "dtype": "float32",
        "decoding": {
            "max_new_tokens": 4,
            "multiline": False,
            "base_indent": 0,
            "forced_prefix": "",
        },
    }
    log = tmp_path / "audit.jsonl"
    log.write_text(json.dumps(record) + "\n")
    replay = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", "replay", "x", "--log", str(log)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 1
    assert "not the same model" in replay.stderr


async def test_a_failed_audit_write_withholds_the_suggestion(client: LanguageClient):
    # /dev/full is not a file the writer may use (a device): refused before any write, so the
    # suggestion is withheld. A real full disk is tests/e2e/test_full_disk.py.
    await start(client, Path("/dev/full"))
    doc = cursor_file("completion/sensors.adb")
    uri = open_doc(client, doc, "ada")

    with pytest.raises(Exception, match="was withheld"):
        await items(client, uri, doc.line, doc.character)

    shown = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("/dev/full" in m and "withheld" in m for m in shown), shown
