"""Hover latency through the real server on the default model (`make bench`): cold and warm.

Starts `airgap-lsp serve` over stdio with a real LSP client on the sample workspace, waits for the
index and the model, then hovers over uses of names the workspace declares:
- cold: the first hover on each name, which generates the explanation;
- warm: the same hovers again, served from the explanation cache;
- index only: the same hovers with `hover.explain` off (what the hover shows at once).
All three run in one process, side by side. Numbers vary with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from context.languages import for_path
from context.symbols import definitions

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "examples" / "workspace"


def cases(limit: int) -> list[tuple[Path, int, int]]:
    """(file, line, character) of uses of declared names, one per name, across the files."""
    files = sorted(p for p in WORKSPACE.rglob("*") if p.is_file() and for_path(p))
    declared: dict[str, tuple[Path, int]] = {}
    for path in files:
        language = for_path(path)
        assert language is not None
        for d in definitions(path.read_bytes(), language):
            declared.setdefault(d.name.lower(), (path, d.start_line))
    found: list[tuple[Path, int, int]] = []
    seen: set[str] = set()
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
            for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", line):
                name = m.group().lower()
                if name in declared and name not in seen and declared[name] != (path, i):
                    seen.add(name)
                    found.append((path, i, m.start() + 1))
    return found[:limit]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(limit: int) -> dict[str, Any]:
    audit = Path(tempfile.mkdtemp(prefix="airgap-bench-")) / "audit.jsonl"
    client = LanguageClient("airgap-bench", "0")
    status: list[str] = []
    ready = asyncio.Event()
    indexed = asyncio.Event()

    @client.feature("airgap/status")
    def _status(_c: LanguageClient, params: Any) -> None:
        state = params["state"] if isinstance(params, dict) else params.state
        status.append(state)
        if state in ("ready", "error"):
            ready.set()

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def _create(_c: LanguageClient, _p: Any) -> None:
        return None

    @client.feature(types.PROGRESS)
    def _progress(_c: LanguageClient, params: types.ProgressParams) -> None:
        value = params.value
        message = value.get("message", "") if isinstance(value, dict) else ""
        if "indexed" in (message or "") or "indexed" in str(getattr(value, "message", "")):
            indexed.set()

    await client.start_io(sys.executable, "-m", "airgap_lsp", "serve")
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True)
            ),
            workspace_folders=[types.WorkspaceFolder(uri=WORKSPACE.as_uri(), name="workspace")],
            # The default hover settings: the latency a user gets, time budget included.
            initialization_options={"auditPath": str(audit)},
        )
    )
    client.initialized(types.InitializedParams())
    await asyncio.gather(ready.wait(), indexed.wait())
    if status[-1] != "ready":
        raise SystemExit("the model did not load: run `make model`")
    positions = cases(limit)
    opened: set[Path] = set()
    for path, _, _ in positions:
        if path not in opened:
            opened.add(path)
            lang = for_path(path)
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=path.as_uri(),
                        language_id=lang.name if lang else "plaintext",
                        version=1,
                        text=path.read_text(encoding="utf-8"),
                    )
                )
            )

    async def hover_all() -> list[float]:
        times = []
        for path, line, character in positions:
            started = time.perf_counter()
            await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
                    position=types.Position(line=line, character=character),
                )
            )
            times.append((time.perf_counter() - started) * 1000)
        return times

    cold = await hover_all()
    warm = await hover_all()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"hover": {"explain": False}})
    )
    index_only = await hover_all()
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    records = [r for r in lines if r["kind"] == "hover"]
    return {"cold": cold, "warm": warm, "index only": index_only, "records": records}


def report(result: dict[str, Any]) -> str:
    recs = result["records"]
    out = [
        f"hover on {len(result['cold'])} names of examples/workspace"
        + (
            f"; model {recs[0]['model']['name']}@{recs[0]['model']['version']} on "
            f"{recs[0]['device']}, {recs[0]['dtype']}"
            if recs
            else ""
        ),
        "",
        "| hover | n | median ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for kind in ("cold", "warm", "index only"):
        values = result[kind]
        out.append(
            f"| {kind} | {len(values)} | {statistics.median(values):.0f} | "
            f"{pct(values, 0.95):.0f} |"
        )
    cold, warm = statistics.median(result["cold"]), statistics.median(result["warm"])
    tokens = [r["timings"]["new_tokens"] for r in recs]
    budget = sum(r["decoding"]["stop_reason"] == "time_budget" for r in recs)
    out += [
        "",
        f"- warm / cold (medians): 1 : {cold / warm:.0f}" if warm else "",
        f"- explanations generated: {len(recs)} (the warm pass: none), "
        f"median {statistics.median(tokens):.0f} tokens, {budget} cut by the time budget"
        if recs
        else "- no explanation generated",
        f"- load average while it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", type=int, default=8, help="how many names to hover over")
    args = parser.parse_args()
    print(report(asyncio.run(run(args.names))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
