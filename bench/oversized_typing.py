"""Lines written in a document over 1 MB, and a request at the next one (`make bench`).

A document over the size the server parses (1 MB) is completed from a window of its text around
the cursor. This measures what the key/value cache keeps there when the user writes a few lines
and asks again, as `bench/next_line.py` does for documents of ordinary size:
- the document: the GNAT runtime's bodies (`bench/setup-corpus.sh`'s Debian corpus) joined in
  name order until it is over 1.15 MB, in a workspace that also holds the runtime's first 40
  specs whose names start with `a-c` (containers, Calendar, Characters: similar code and
  definitions for the context);
- positions: lines of the last body joined, with code and not a comment, drawn with `--seed`;
- at each, a line L approached from K lines above (K from 1 to `--max-lines`): a request at the
  end of line L-K of the document without lines L-K+1 to L, then the whole document with line L
  cut to its indentation, and a request after that indentation (a line start, as after
  pressing Enter);
- one real server over stdio (default settings), as the editor runs it.

Reported for the second request: the share of prompt tokens whose key/values were kept from the
first (the audit line's `reused_prompt_tokens`) and prefill, where it generated (a suggestion of
blanks only has no audit line, and one served from the first request's without a generation is
not counted); the client's wait; exact match of the first line as `bench/quality.py` scores it;
a request that failed or timed out counts as wrong, and is said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_lift  # noqa: E402  (bench/ scripts import each other as modules)
import corpus  # noqa: E402
import quality  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py)
from quality_stats import percentile  # noqa: E402

DOCUMENT_BYTES = 1_150_000  # over the 1 MB the server parses
SPECS = 40  # the runtime's container specs beside it, for the context


def document() -> tuple[str, int]:
    """The joined bodies, and the first line of the last one."""
    parts: list[str] = []
    size = 0
    for path in sorted(corpus.source_root("ada-runtime").glob("*.adb")):
        parts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(parts[-1].encode())
        if size > DOCUMENT_BYTES:
            break
    text = "\n".join(parts)
    if len(text.encode()) <= DOCUMENT_BYTES:
        raise corpus.MissingCorpus("the runtime's bodies are too few to make a document over 1 MB")
    return text, text.count("\n") - parts[-1].count("\n")


def changed(srv: context_lift.Server, path: Path, text: str, version: int) -> None:
    srv.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def measure(args: argparse.Namespace, tmp: Path) -> list[dict]:
    text, first = document()
    lines = text.split("\n")
    rng = random.Random(args.seed)
    code = [
        i
        for i in range(first + args.max_lines + 1, len(lines))
        if lines[i].strip() and not lines[i].lstrip().startswith("--")
    ]
    picks = sorted(rng.sample(code, min(args.positions, len(code))))
    ws = tmp / "workspace"
    ws.mkdir()
    for spec in sorted(corpus.source_root("ada-runtime").glob("a-c*.ads"))[:SPECS]:
        shutil.copy(spec, ws / spec.name)
    path = ws / "joined.adb"
    path.write_text(text, encoding="utf-8")
    srv = context_lift.Server(
        ws, tmp / "audit.jsonl", settings=args.settings, log=tmp / "server.log"
    )
    await srv.start(args.index_timeout)
    rows = []
    try:
        for line in tqdm(picks, unit="position", file=sys.stderr):
            k = rng.randint(1, args.max_lines)
            indent = len(lines[line]) - len(lines[line].lstrip())
            above = corpus.Position(
                path=path,
                line=line - k,
                character=len(lines[line - k]),
                text="\n".join(lines[: line - k + 1] + lines[line + 1 :]),
                target="",
            )
            at = corpus.Position(
                path=path,
                line=line,
                character=indent,
                text="\n".join([*lines[:line], lines[line][:indent], *lines[line + 1 :]]),
                target=lines[line].strip(),
            )
            srv.open(above, "ada")
            try:
                await srv.complete(above, args.timeout)
                changed(srv, path, at.text, 2)
                got, ms, record = await srv.complete(at, args.timeout)
                failed = ""
            except TimeoutError:
                got, ms, record, failed = "", 0.0, {}, f"no answer in {args.timeout:.0f} s"
            except JsonRpcException as exc:  # an error answered: counted, not fatal
                got, ms, record, failed = "", 0.0, {}, str(exc) or type(exc).__name__
            finally:
                srv.close(above)
            if failed:
                print(f"oversized_typing: line {line + 1}: {failed}", file=sys.stderr)
            timings = record.get("timings", {})
            result = record.get("result", {})
            generated = (
                "reused_prompt_tokens" in timings
                and timings.get("prompt_tokens")
                and not result.get("served_from")
                and not result.get("continues")
            )
            rows.append(
                {
                    "line": line,
                    "k": k,
                    "exact": quality.scored(got, at.target).exact,
                    "failed": failed,
                    "wait_ms": ms if not failed else None,
                    "kept": timings["reused_prompt_tokens"] / timings["prompt_tokens"]
                    if generated
                    else None,
                    "prefill_ms": timings.get("prefill_ms") if generated else None,
                }
            )
    finally:
        await srv.stop()
    return rows


def report(rows: list[dict], args: argparse.Namespace, wall_s: float) -> str:
    gens = [r for r in rows if r["kept"] is not None]
    kept = [r["kept"] for r in gens]
    prefill = [r["prefill_ms"] for r in gens]
    wait = [r["wait_ms"] for r in rows if r["wait_ms"] is not None]

    def ms(values: list[float]) -> str:
        return f"{percentile(values, 50):,.0f} / {percentile(values, 95):,.0f}" if values else "-"

    return "\n".join(
        [
            f"`bench/oversized_typing.py --positions {args.positions} --seed {args.seed} "
            f"--max-lines {args.max_lines}"
            + (f" --settings '{json.dumps(args.settings)}'" if args.settings else "")
            + f"`, commit {quality.commit()}, "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC, {wall_s / 60:.1f} min; "
            f"{describe()}; load average at the end {os.getloadavg()[0]:.1f}.",
            "",
            "| second request | value |",
            "|---|---|",
            f"| positions (generated) | {len(rows)} ({len(gens)}) |",
            f"| prompt kept >= 90 % | {sum(k >= 0.9 for k in kept)} of {len(gens)} |",
            f"| kept share, median | {statistics.median(kept):.0%} |"
            if kept
            else "| kept share, median | - |",
            f"| prefill ms p50 / p95 | {ms(prefill)} |",
            f"| wait ms p50 / p95 | {ms(wait)} |",
            f"| exact match | {sum(r['exact'] for r in rows)} of {len(rows)} |",
            f"| failed or timed out | {sum(bool(r['failed']) for r in rows)} |",
        ]
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--positions", type=int, default=12)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-lines", type=int, default=4, help="the most lines above (K)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per request")
    p.add_argument("--index-timeout", type=float, default=600, help="seconds for the index")
    p.add_argument("--json", type=Path, help="write every position's numbers here")
    p.add_argument(
        "--settings",
        type=json.loads,
        default={},
        help="the server's settings as JSON (default: its defaults), e.g. '{\"context\": "
        '{"crossFile": false}}\' for the window alone',
    )
    args = p.parse_args()
    if args.positions < 1 or args.max_lines < 1:
        p.error("--positions and --max-lines must be at least 1")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="airgap-oversized-") as tmp:
            rows = asyncio.run(measure(args, Path(tmp)))
    except corpus.MissingCorpus as exc:
        print(f"oversized_typing: {exc}", file=sys.stderr)
        return 2
    print(report(rows, args, time.perf_counter() - started))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0 if rows else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
