"""Completion latency through the real server on the default model (`make bench`).

Starts `airgap-lsp serve` over stdio with a real LSP client, asks for single-line and multi-line
completions at positions taken from the sample workspace (the rest of the line, or the block
below, removed as if being typed), and prints the latency as the editor sees it, the time spent
reading the prompt and the decoding speed, from the audit lines. Numbers vary with the machine's
load: compare runs made side by side, not with a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from lsprotocol import types
from machine import describe  # type: ignore[import-not-found]
from pygls.lsp.client import LanguageClient

from context.languages import for_path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "examples" / "workspace"


def cases(per_kind: int) -> list[tuple[str, str, str, int, int]]:
    """(kind, path, text, line, character) from every code line of the sample files, in turn."""
    single, multi = [], []
    for path in sorted(p for p in WORKSPACE.rglob("*") if p.is_file() and for_path(p)):
        lines = path.read_text(encoding="utf-8").split("\n")
        for i, line in enumerate(lines):
            body = line.strip()
            if len(body) < 12 or body.startswith(("--", "#", '"""')):
                continue
            indent = len(line) - len(line.lstrip())
            cut = indent + len(body) // 2
            doc = "\n".join(lines[:i] + [line[:cut]] + lines[i + 1 :])
            single.append(("single-line", str(path), doc, i, cut))
            end = i + 1
            while end < len(lines) and (
                not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) >= indent
            ):
                end += 1
            doc = "\n".join(lines[:i] + [line[:indent]] + lines[end:])
            multi.append(("multi-line", str(path), doc, i, indent))
    step_s = max(1, len(single) // per_kind)
    step_m = max(1, len(multi) // per_kind)
    return single[::step_s][:per_kind] + multi[::step_m][:per_kind]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(per_kind: int) -> dict:
    audit = Path(tempfile.mkdtemp(prefix="airgap-bench-")) / "audit.jsonl"
    client = LanguageClient("airgap-bench", "0")
    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve")
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"auditPath": str(audit)},
        )
    )
    client.initialized(types.InitializedParams())
    latencies: dict[str, list[float]] = {"single-line": [], "multi-line": []}
    all_cases = cases(per_kind)
    for n, (kind, path, text, line, character) in enumerate([all_cases[0], *all_cases]):
        uri = Path(path).as_uri() + f"#bench{n}"
        lang = for_path(path)
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=lang.name if lang else "plaintext", version=1, text=text
                )
            )
        )
        started = time.perf_counter()
        await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        elapsed = (time.perf_counter() - started) * 1000
        if n > 0:  # the first request waits for the model to load: a warm-up, not counted
            latencies[kind].append(elapsed)
    assert client._server is not None  # noqa: SLF001 - the child's peak memory, before it exits
    with open(f"/proc/{client._server.pid}/status", encoding="ascii") as fh:  # noqa: SLF001
        peak_kib = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:"))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    # Suggestions only (accept / not-accepted events share the log), less the warm-up's.
    records = [r for r in lines if r["kind"] == "inline_completion"][1:]
    return {"latencies": latencies, "records": records, "peak_mib": peak_kib / 1024}


def report(result: dict) -> str:
    recs = result["records"]
    device = recs[0]["device"] if recs else "?"
    dtype = recs[0]["dtype"] if recs else "?"
    tokens = sum(r["timings"]["new_tokens"] for r in recs)
    decode_s = sum(r["timings"]["decode_ms"] for r in recs) / 1000
    prefill = [r["timings"]["prefill_ms"] for r in recs]
    prompt_tokens = [r["timings"]["prompt_tokens"] for r in recs]
    out = [
        f"date: {datetime.now(UTC).date()}; machine: {describe()}; "
        f"device {device}, {dtype}; model {recs[0]['model']['name']}@"
        f"{recs[0]['model']['version']}"
        if recs
        else "no audited suggestion",
        "",
        "| completion | n | median ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for kind, values in result["latencies"].items():
        if values:
            out.append(
                f"| {kind} | {len(values)} | {statistics.median(values):.0f} | "
                f"{pct(values, 0.95):.0f} |"
            )
    out += [
        "",
        f"- decoding speed: {tokens / decode_s:.1f} tokens/s ({tokens} tokens in {decode_s:.1f} s)"
        if decode_s
        else "- decoding speed: no tokens",
        f"- reading the prompt: median {statistics.median(prefill):.0f} ms for a median of "
        f"{statistics.median(prompt_tokens):.0f} prompt tokens"
        if prefill
        else "",
        f"- suggestions audited: {len(recs)} of "
        f"{sum(len(v) for v in result['latencies'].values())} requests (the rest were empty)",
        f"- server peak memory (VmHWM): {result['peak_mib']:.0f} MiB",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=12, help="requests of each kind")
    args = parser.parse_args()
    print(report(asyncio.run(run(args.per_kind))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
