"""A team's inference server as the engine: an OpenAI-compatible completions API (vLLM, TGI,
llama.cpp's server) inside the perimeter, serving the same locked model.

What makes a suggestion trustworthy stays on this machine: the prompt is built and formatted here
from the local store's manifest, tokenizer and chat template (hashed at load like a local model's);
the audit line is written here. The server only turns a prompt into text.

The lock, remotely: the server must serve the model under a name that carries the manifest sha256
of the locked checkpoint (`--served-model-name NAME@VERSION+sha256:HASH`, see docs/team-server.md).
That is checked on every new connection, before any prompt is sent; a server that serves anything
else is refused. Requests are greedy and streamed; closing the stream (a newer keystroke, the
editor's cancel, a stop rule that ends the suggestion) is what makes the server stop generating.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from airgap_lsp.errors import AirgapError
from inference.engine import (
    Engine,
    EngineInfo,
    Generation,
    GenerationRequest,
    Tokenized,
    first_refused,
    joined,
    spelling,
)
from inference.errors import BackendDown, BackendRefused, GenerationCancelled
from inference.offline import set_offline_env
from inference.prompt_format import FORMATS
from inference.stops import cut_forced
from inference.store import StoredModel

CANCEL_POLL_S = 0.02  # how often a running request looks at its cancel flag
GREEDY: dict[str, Any] = {
    "temperature": 0.0,  # greedy, as locally
    "top_p": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    # Not in the OpenAI API, and on by default in some servers: llama.cpp's server penalizes
    # repeats (1.1) unless told not to; vLLM and TGI default to 1.0.
    "repeat_penalty": 1.0,
    "repetition_penalty": 1.0,
}


def served_name(stored: StoredModel) -> str:
    """The name a team server should serve the locked model under."""
    return f"{stored.ref}+sha256:{stored.manifest_sha256}"


# Token healing asks the server for one token at a time until the forced start is spelled; a
# token spells at least one character, so this many spell any start healing forces.
MAX_HEALING_REQUESTS = 160


class RemoteEngine(Tokenized):
    """Generation on a team server; tokenizer, prompt format and chat template from the store."""

    def __init__(
        self,
        stored: StoredModel,
        url: str,
        *,
        ca_file: str = "",
        timeout_s: float = 30.0,
    ) -> None:
        set_offline_env()
        from transformers import AutoTokenizer

        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AirgapError(f"The team server's address {url!r} is not an http(s):// URL.")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._timeout = timeout_s
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            try:
                self._ssl = ssl.create_default_context(cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise AirgapError(
                    f"Cannot read the CA certificate {ca_file!r} for {self.url} ({exc}). Check "
                    "ca_file in the policy."
                ) from exc
        self._stored_sha = stored.manifest_sha256
        self._expected = served_name(stored)
        self._tokenizer = AutoTokenizer.from_pretrained(
            str(stored.path), local_files_only=True, trust_remote_code=False
        )
        self._fmt = FORMATS[stored.manifest.prompt_format]
        self._token_text: list[str] | None = None  # each token's text, for token healing
        self._joined_ids: dict[str, list[int]] = {}  # blank -> the tokens joined to it
        self._conn: http.client.HTTPConnection | None = None
        self._model_id = ""  # the id the server serves the locked model under, once checked
        self._lock = threading.Lock()
        self.info = EngineInfo.of(
            stored,
            device=f"team server {self.url}",
            dtype="as served",
            backend="remote",
            address=self.url,
        )

    # -- the Engine protocol (count_tokens and chat_prompt: Tokenized) ---------------------------
    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generation:
        with self._lock:
            return self._generate(request, cancel or threading.Event())

    def check(self) -> str:
        """Connect (if not connected) and check what the server serves; the served id."""
        with self._lock:
            self._connected()
            return self._model_id

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- the connection -------------------------------------------------------------------------
    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._model_id = None, ""

    def _connected(self) -> http.client.HTTPConnection:
        """The open connection; a new one is checked before anything is sent on it."""
        if self._conn is not None and self._conn.sock is not None:
            return self._conn
        self._drop()
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._conn = conn
        try:
            status, body = self._call("GET", "/models")
        except BaseException:
            self._drop()
            raise
        ids = [str(m.get("id", "")) for m in body.get("data", []) if isinstance(m, dict)]
        if status != 200:
            self._drop()
            raise BackendDown(
                f"The team server at {self.url} answered HTTP {status} to its model list: it is "
                "not an OpenAI-compatible API, or not ready. Tell the administrator."
            )
        match = [i for i in ids if self._stored_sha in i]
        if not match:
            self._drop()
            raise BackendRefused(
                f"The team server at {self.url} serves {', '.join(map(repr, ids)) or 'no model'}, "
                f"none of which carries the manifest sha256 {self._stored_sha} of the locked model "
                f"{self.info.name}@{self.info.version}: it may serve another model. airgap-lsp "
                f"refuses it. The administrator must serve the locked model as {self._expected!r} "
                "(docs/team-server.md)."
            )
        self._model_id = match[0]
        return conn

    def _call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        assert self._conn is not None
        try:
            self._send(method, path, body)
            resp = self._conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._down(exc) from exc
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {}
        return resp.status, doc if isinstance(doc, dict) else {}

    def _send(self, method: str, path: str, body: object = None) -> None:
        assert self._conn is not None
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        self._conn.request(method, self._base + path, body=payload, headers=headers)

    def _down(self, exc: BaseException) -> AirgapError:
        """What a failed connection means: down, or (a certificate that fails the check) a server
        that may be another one, refused like a wrong model, never stood in for."""
        self._drop()
        if isinstance(exc, ssl.SSLCertVerificationError):
            return BackendRefused(
                f"The team server at {self.url} failed the TLS check ({exc.verify_message}): its "
                "certificate is not signed by the CA in the policy's ca_file, or not for this "
                "host name. airgap-lsp refuses it; tell the administrator."
            )
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = reason or type(exc).__name__
        return BackendDown(
            f"The team server at {self.url} is not answering ({reason}). Tell the administrator; "
            "suggestions resume as soon as it answers."
        )

    # -- one generation -------------------------------------------------------------------------
    def _generate(self, request: GenerationRequest, cancel: threading.Event) -> Generation:
        if not request.prompt:
            raise AirgapError("The prompt is empty: there is nothing to generate from.")
        if cancel.is_set():
            raise GenerationCancelled("cancelled before it started")
        stop = replace(request.stop, stop_texts=request.stop.stop_texts + self._fmt.stop)
        t0 = time.perf_counter()
        # Token healing, as the local engine does it: the first tokens must spell the whitespace
        # typed before the cursor (cut from the prompt). The server is asked for them one at a
        # time, its choice restricted to the tokens that spell it (logit_bias), then continues.
        healed, pending, prompt = "", request.forced_prefix, request.prompt
        inside = bool(request.refuse_start) and self.ends_inside(pending)
        asked = 0
        while pending and asked < MAX_HEALING_REQUESTS:
            asked += 1
            allowed = self._spelling(pending, request.refuse_start)
            if not allowed:
                break
            banned = self._first_refused(pending, request.refuse_first)
            piece = self._one_token(prompt, allowed, cancel, banned=banned)
            if not piece:
                break
            healed, prompt = healed + piece, prompt + piece
            pending = pending[len(piece) :] if pending.startswith(piece) else ""
        refused = request.refuse_start or request.refuse_first
        if refused and healed == request.forced_prefix:
            # The suggestion's first token: not the end of text, nor one that starts with a
            # refused character, nor the start of a suggestion refused before. Line breaks, the
            # end and those starts are biased away; blanks, which half the vocabulary starts
            # with, are passed over among the server's 20 best.
            banned = self._first_refused("", request.refuse_first)
            if request.refuse_start:  # (mid-line, the end may come first)
                breaks = "".join(c for c in request.refuse_start if c in "\r\n")
                banned += self._refused(breaks)
            if inside:  # healing spelled the indentation to its end: no word may follow bare
                banned += self._joined(healed[-1])
            piece = self._one_token(prompt, [], cancel, banned=banned, refuse=request.refuse_start)
            healed, prompt = healed + piece, prompt + piece
        n_healed = self.count_tokens(healed) if healed else 0
        body = {
            "model": self._model_id,
            "prompt": prompt,
            "max_tokens": max(1, request.max_new_tokens - n_healed),
            "stream": True,
            **GREEDY,
        }
        finished = threading.Event()
        cancelled = threading.Event()
        text, reason, pieces = "", "max_tokens", 0
        t1 = 0.0
        deadline = t0 + request.max_seconds if request.max_seconds > 0 else None
        watcher: threading.Thread | None = None
        try:
            conn, resp = self._post(body)
            watcher = threading.Thread(
                target=self._watch, args=(conn, cancel, finished, cancelled), daemon=True
            )
            watcher.start()
            if resp.status != 200:
                self._refused_request(resp)
            ended = False  # by the server: a finish reason, then the end of the stream
            for chunk in self._events(resp, cancelled):
                if not t1:
                    t1 = time.perf_counter()
                choice = (chunk.get("choices") or [{}])[0]
                if ended:
                    continue
                piece = str(choice.get("text") or "")
                pieces += 1 if piece else 0
                text += piece
                kept, why = cut_forced(
                    healed + text, request.forced_prefix, stop, request.line_before
                )
                if why is not None:
                    text, reason = kept, why
                    break
                finish = choice.get("finish_reason")
                if finish is not None:
                    reason, ended = ("eos" if finish == "stop" else "max_tokens"), True
                elif deadline is not None and time.perf_counter() > deadline:
                    reason = "time_budget"
                    break
            else:
                ended = True
            if ended:
                resp.read()  # the rest of the stream: the connection serves the next request
            else:
                # Ended here, by a stop rule or the time budget: closing the connection is what
                # makes the server stop generating. The next request reconnects and checks again.
                self._drop()
        finally:
            finished.set()
            if watcher is not None:
                watcher.join()
        if reason in ("max_tokens", "eos", "time_budget"):
            text = cut_forced(healed + text, request.forced_prefix, stop, request.line_before)[0]
        t2 = time.perf_counter()
        t1 = t1 or t2
        return Generation(
            text=text.rstrip("\ufffd"),
            stop_reason=reason,
            prompt_tokens=self.count_tokens(request.prompt),
            new_tokens=pieces + n_healed,
            prefill_ms=(t1 - t0) * 1000,
            decode_ms=(t2 - t1) * 1000,
        )

    def _token_texts(self) -> list[str]:
        if self._token_text is None:
            self._token_text = self.token_texts()
        return self._token_text

    def _spelling(self, text: str, refuse: str = "") -> list[int]:
        return spelling(self._token_texts(), text, refuse)

    def _first_refused(self, pending: str, refused: tuple[str, ...]) -> list[int]:
        return first_refused(self._token_texts(), pending, refused) if refused else []

    def _joined(self, blank: str) -> list[int]:
        if blank not in self._joined_ids:
            self._joined_ids[blank] = joined(self._token_texts(), blank)
        return self._joined_ids[blank]

    def _refused(self, chars: str) -> list[int]:
        """The end of text, the special tokens (a file separator ends a suggestion as surely),
        and the tokens that start with one of `chars` or spell nothing."""
        if self._token_text is None:
            self._token_text = self.token_texts()
        ids = [i for i, p in enumerate(self._token_text) if not p or p[0] in chars]
        return sorted({*ids, *self._tokenizer.added_tokens_decoder})

    def _one_token(
        self,
        prompt: str,
        allowed: list[int],
        cancel: threading.Event,
        banned: Sequence[int] = (),
        refuse: str = "",
    ) -> str:
        """The server's greedy choice of one token among `allowed` (logit_bias: +100 on each,
        which keeps their order and puts every other token below them), or of any but
        `banned` (-100 on each); with `refuse`, the likeliest of its 20 best that starts with
        none of those characters (its choice where none of them does)."""
        bias = {str(i): 100 for i in allowed} | {str(i): -100 for i in banned}
        body: dict[str, Any] = {
            "model": self._model_id,
            "prompt": prompt,
            "max_tokens": 1,
            "logit_bias": bias,
            **GREEDY,
        }
        if refuse:
            body["logprobs"] = 20
        conn, resp = self._post(body)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._down(exc) from exc
        if resp.status != 200:
            self._refused_status(resp.status, data)
        if cancel.is_set():
            raise GenerationCancelled("cancelled before the server answered")
        try:
            choice = json.loads(data)["choices"][0]
            text = str(choice.get("text") or "")
            if refuse and (not text or text[0] in refuse):
                top = ((choice.get("logprobs") or {}).get("top_logprobs") or [{}])[0] or {}
                special = {str(t) for t in self._tokenizer.added_tokens_decoder.values()}
                # (a server may list them before the bias is applied: banned ones are left out)
                shunned = special | {self._token_texts()[i] for i in banned}
                fine = [
                    (p, t) for t, p in top.items() if t and t[0] not in refuse and t not in shunned
                ]
                text = max(fine)[1] if fine else text
            return text
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._drop()
            raise AirgapError(
                f"The team server at {self.url} sent an answer airgap-lsp cannot read "
                f"({data[:80]!r}). Tell the administrator."
            ) from exc

    def _post(
        self, body: dict[str, Any]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a completion request and read its status line.

        A kept-alive connection the server closed in the meantime (it restarted, or timed the
        connection out) fails before any answer: that one request is sent again on a new
        connection, which is checked first like any new connection. A failure on a new
        connection is the server being down."""
        reused = self._conn is not None and self._conn.sock is not None
        while True:
            conn = self._connected()
            try:
                self._send("POST", "/completions", body)
                return conn, conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected) as exc:
                if not reused:
                    raise self._down(exc) from exc
                self._drop()
                reused = False  # once, on a new connection
            except (OSError, http.client.HTTPException) as exc:
                raise self._down(exc) from exc

    def _watch(
        self,
        conn: http.client.HTTPConnection,
        cancel: threading.Event,
        finished: threading.Event,
        cancelled: threading.Event,
    ) -> None:
        """Close the connection when the request is cancelled: the blocked read returns at once,
        and the server sees the stream closed and stops generating."""
        while not finished.is_set():
            if cancel.wait(CANCEL_POLL_S):
                if not finished.is_set():
                    cancelled.set()
                    sock = conn.sock
                    if sock is not None:
                        with contextlib.suppress(OSError):  # already closed by the server
                            sock.shutdown(socket.SHUT_RDWR)
                return

    def _events(
        self, resp: http.client.HTTPResponse, cancelled: threading.Event
    ) -> Iterator[dict[str, Any]]:
        """The server-sent events of a streamed completion, as JSON objects."""
        while True:
            try:
                line = resp.readline()
            except (OSError, http.client.HTTPException) as exc:
                if cancelled.is_set():
                    self._drop()
                    raise GenerationCancelled("cancelled while the server was generating") from exc
                raise self._down(exc) from exc
            if cancelled.is_set():
                self._drop()
                raise GenerationCancelled("cancelled while the server was generating")
            if not line:
                raise self._down(ConnectionError("the stream ended before the completion did"))
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                doc = json.loads(data)
            except ValueError as exc:
                self._drop()
                raise AirgapError(
                    f"The team server at {self.url} sent a stream airgap-lsp cannot read "
                    f"({data[:80]!r}). Tell the administrator."
                ) from exc
            if isinstance(doc, dict) and "error" in doc:
                self._drop()
                raise AirgapError(f"The team server at {self.url} failed: {doc['error']}")
            if isinstance(doc, dict):
                yield doc

    def _refused_request(self, resp: http.client.HTTPResponse) -> None:
        self._refused_status(resp.status, resp.read())

    def _refused_status(self, status: int, data: bytes) -> None:
        self._drop()
        try:
            detail = json.loads(data)
        except ValueError:
            detail = data[:200].decode("utf-8", "replace")
        if status == 404:
            raise BackendRefused(
                f"The team server at {self.url} no longer serves {self._model_id!r} (HTTP 404: "
                f"{detail}). airgap-lsp checks it again on the next request."
            )
        raise AirgapError(
            f"The team server at {self.url} refused the completion (HTTP {status}: {detail})."
        )


class TeamEngine:
    """A team server, with what happens when it fails: the local model answers while the server
    is down where the policy allows it (`load_local`), else the request fails. Either way the
    user is told once per outage, and again when the server is back; each generation says which
    engine answered. A server that serves another model is refused, never stood in for."""

    def __init__(
        self,
        remote: RemoteEngine,
        load_local: Callable[[], Engine] | None,
        tell: Callable[[str, bool], None],
    ) -> None:
        self.remote = remote
        self.info = remote.info
        self._load_local = load_local
        self._local: Engine | None = None
        self._tell = tell  # (message, down?)
        self._down = False

    def count_tokens(self, text: str) -> int:
        return self.remote.count_tokens(text)

    def last_token(self, text: str) -> str:
        return self.remote.last_token(text)

    def chat_prompt(self, messages: Sequence[tuple[str, str]], reply_start: str = "") -> str | None:
        return self.remote.chat_prompt(messages, reply_start)

    def went_down(self, exc: AirgapError) -> Engine | None:
        """Tell the user (once per outage); the local model that stands in, if one may."""
        local = None
        if self._load_local is not None and isinstance(exc, BackendDown):
            if self._local is None:
                self._local = self._load_local()
            local = self._local
        if not self._down:
            self._down = True
            also = f" The local model {local.info.name} answers meanwhile." if local else ""
            self._tell(f"{exc}{also}", True)
        return local

    def generate(
        self, request: GenerationRequest, cancel: threading.Event | None = None
    ) -> Generation:
        try:
            gen = self.remote.generate(request, cancel)
        except (BackendDown, BackendRefused) as exc:
            local = self.went_down(exc)
            if local is None:
                raise
            return replace(local.generate(request, cancel), answered_by=local.info)
        if self._down:
            self._down = False
            self._tell(f"The team server at {self.remote.url} answers again.", False)
        return gen
