"""A request some lines below the last one, with the context kept and chosen afresh (`make bench`).

The user asked for a suggestion at one line, wrote the next few lines, and asks again: the
server keeps the context it chose for a place while the cursor stays within `context.keepLines`
lines of it (default 8) and its best snippet is still the best, so that the prompt's start,
and the key/values the engine kept, survive; chosen afresh for the moved lines, the context
changes most prompts' first snippets and the whole prompt is read again. This measures both
sides on the quality benchmark's positions (bench/quality_corpus.py: the same sampler and seed
as bench/quality.py):
- a position's line L (the document with the rest of that line removed, the expected answer what
  was removed) is approached from K lines above, K drawn from 1 to --max-lines: the document
  without lines L-K+1 to L (not written yet), a request at the end of line L-K; then the
  document as at the position (the lines written), a request at the position;
- two real servers per project, both done indexing first: "kept" with the default settings,
  "fresh" with `{"context": {"keepLines": 0}}`; which goes first alternates by position.

Reported for the second request, side by side: exact match of the first line (as quality.py
scores it) with the positions one got right and the other not and the sign test; how often the
context was the same on both (where both generated), and how often the kept server's was the
one of its first request; the share of prompt tokens whose key/values were kept from the request
before, prefill time and the client's wait, p50 and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_lift  # noqa: E402  (bench/ scripts import each other as modules)
import corpus  # noqa: E402
import quality  # noqa: E402
import quality_corpus as qc  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py)
from quality_stats import percentile, sign_test  # noqa: E402

from airgap_lsp.errors import AirgapError  # noqa: E402
from airgap_lsp.paths import DEFAULT_MODEL, model_store_root  # noqa: E402
from airgap_lsp.settings import Settings  # noqa: E402
from inference.store import ModelStore  # noqa: E402

SETTINGS: dict[str, dict[str, Any]] = {"kept": {}, "fresh": {"context": {"keepLines": 0}}}


@dataclass(slots=True)
class Answer:
    text: str = ""
    failed: str = ""
    exact: bool = False
    ms: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)  # the first request's audit line

    @property
    def timings(self) -> dict[str, Any]:
        return dict(self.record.get("timings", {}))

    @property
    def sources(self) -> list[Any]:
        return list(self.record.get("context_sources", []))


@dataclass(slots=True)
class Case:
    pos: qc.Position
    lines: int  # K: how far above the first request was
    answers: dict[str, Answer] = field(default_factory=dict)


def approach(pos: qc.Position, k: int) -> corpus.Position:
    """The document before lines L-K+1 to L were written, the cursor at the end of line L-K."""
    lines = pos.cut.text.split("\n")
    at = pos.cut.line - k
    before = [*lines[: at + 1], *lines[pos.cut.line + 1 :]]
    return corpus.Position(
        path=pos.cut.path, line=at, character=len(lines[at]), text="\n".join(before), target=""
    )


def change(srv: context_lift.Server, pos: corpus.Position, version: int) -> None:
    srv.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=pos.path.as_uri(), version=version
            ),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=pos.text)],
        )
    )


async def ask(srv: context_lift.Server, pos: qc.Position, k: int, timeout: float) -> Answer:
    first = approach(pos, k)
    srv.open(first, qc.LSP_ID[pos.language])
    try:
        _, _, before = await srv.complete(first, timeout)
        change(srv, pos.cut, 2)
        text, ms, record = await srv.complete(pos.cut, timeout)
    except TimeoutError:
        return Answer(failed=f"no answer in {timeout:.0f} s")
    except JsonRpcException as exc:  # an error answered: counted, not fatal
        return Answer(failed=str(exc) or type(exc).__name__)
    finally:
        srv.close(pos.cut)
    got = quality.scored(text, pos.cut.target)
    return Answer(text=text, exact=got.exact, ms=ms, record=record, first=before)


async def project_cases(
    args: argparse.Namespace,
    project: qc.Project,
    todo: list[tuple[qc.Position, int]],
    tmp: Path,
    bar: tqdm,
    offset: int,
) -> list[Case]:
    servers = {
        s: context_lift.Server(
            project.root,
            tmp / f"audit-{project.name}-{s}.jsonl",
            args.model,
            SETTINGS[s],
            tmp / f"server-{project.name}-{s}.log",
        )
        for s in SETTINGS
    }
    bar.set_description(f"{project.name}: indexing")
    try:
        await asyncio.gather(*(srv.start(args.index_timeout) for srv in servers.values()))
        bar.set_description(project.name)
        cases = []
        for n, (pos, k) in enumerate(todo):
            case = Case(pos, k)
            names = list(SETTINGS) if (offset + n) % 2 == 0 else list(reversed(SETTINGS))
            for s in names:
                case.answers[s] = await ask(servers[s], pos, k, args.timeout)
            cases.append(case)
            bar.update(1)
        return cases
    finally:
        for srv in servers.values():
            await srv.end()


def report(cases: list[Case], args: argparse.Namespace, seconds: float) -> str:
    ok = [c for c in cases if not any(a.failed for a in c.answers.values())]
    failed = len(cases) - len(ok)
    median_k = statistics.median(c.lines for c in ok) if ok else 0
    out = [
        f"`bench/next_line.py --per-language {args.per_language} --seed {args.seed} "
        f"--max-lines {args.max_lines}`, commit {quality.commit()}, model {args.model}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min; {describe()}.",
        "",
        f"{len(ok)} positions ({failed} left out: a request failed), each approached from "
        f"1 to {args.max_lines} lines above (median {median_k:g}).",
        "",
        "| positions | n | exact, kept | exact, fresh | kept right, fresh wrong / the reverse "
        "| sign test p | the same context on both | kept: its first request's context |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: list[tuple[str, list[Case]]] = [("all", ok)]
    groups += [(kind, [c for c in ok if c.pos.kind == kind]) for kind in qc.KINDS]
    groups += [(lang, [c for c in ok if c.pos.language == lang]) for lang in qc.LANGUAGES]
    for name, group in groups:
        if not group:
            continue
        kept = sum(c.answers["kept"].exact for c in group)
        fresh = sum(c.answers["fresh"].exact for c in group)
        won = sum(c.answers["kept"].exact and not c.answers["fresh"].exact for c in group)
        lost = sum(c.answers["fresh"].exact and not c.answers["kept"].exact for c in group)
        paired = [c for c in group if all(a.record for a in c.answers.values())]
        same = sum(c.answers["kept"].sources == c.answers["fresh"].sources for c in paired)
        firsts = [c.answers["kept"] for c in group if c.answers["kept"].record]
        firsts = [a for a in firsts if a.first]
        reused = sum(a.sources == a.first.get("context_sources") for a in firsts)
        out.append(
            f"| {name} | {len(group)} | {kept} | {fresh} | {won} / {lost} "
            f"| {sign_test(won, lost):.3f} | {same} of {len(paired)} | {reused} of {len(firsts)} |"
        )
    out += [
        "",
        "The second request, over those that generated (an empty answer has no audit line):",
        "",
        "| | generations | kept share of the prompt, median | prompt tokens, median "
        "| prefill ms p50 / p95 | wait ms p50 / p95 |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        gens = [c.answers[s] for c in ok if c.answers[s].timings.get("prompt_tokens")]
        share = [
            a.timings.get("reused_prompt_tokens", 0) / a.timings["prompt_tokens"] for a in gens
        ]
        tokens = [a.timings["prompt_tokens"] for a in gens]
        prefill = [float(a.timings.get("prefill_ms", 0.0)) for a in gens]
        waits = [a.ms for a in gens]
        out.append(
            f"| {s} | {len(gens)} | {fmt(statistics.median(share) * 100 if share else None)} % "
            f"| {fmt(statistics.median(tokens) if tokens else None)} "
            f"| {fmt(percentile(prefill, 50))} / {fmt(percentile(prefill, 95))} "
            f"| {fmt(percentile(waits, 50))} / {fmt(percentile(waits, 95))} |"
        )
    both = [
        (c.answers["kept"].timings, c.answers["fresh"].timings)
        for c in ok
        if c.answers["kept"].timings.get("prefill_ms")
        and c.answers["fresh"].timings.get("prefill_ms")
    ]
    if both:
        ratio = statistics.median(k["prefill_ms"] / f["prefill_ms"] for k, f in both)
        out += [
            "",
            f"Prefill, kept ÷ fresh, median over the {len(both)} positions with both: {ratio:.2f}.",
        ]
    return "\n".join(out)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-language", type=int, default=20, help="positions per language")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--languages", help="comma-separated, of: " + ", ".join(qc.LANGUAGES))
    p.add_argument("--corpus", type=Path, default=quality.DEFAULT_CORPUS)
    p.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME@VERSION in the store")
    p.add_argument("--max-lines", type=int, default=8, help="the most lines above (K)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per request")
    p.add_argument("--index-timeout", type=float, default=900, help="seconds per index")
    p.add_argument("--write", type=Path, help="append the report (markdown) to this file")
    p.add_argument("--json", type=Path, help="write every position's answers here")
    args = p.parse_args()
    if args.per_language < 1 or args.max_lines < 1:
        p.error("--per-language and --max-lines must be at least 1")
    if args.max_lines > (keep := Settings().context_keep_lines):
        print(
            f"next_line: positions more than {keep} lines below (the "
            "default context.keepLines) get the context chosen afresh on both servers",
            file=sys.stderr,
        )
    started = time.perf_counter()
    notes: list[str] = []
    try:
        args.model = "@".join(ModelStore(model_store_root()).resolve(args.model))
        languages, explicit = quality.choose_languages(args.languages)
        projects, languages = quality.gather(args, languages, explicit, notes)
        files = {pr.name: qc.scan(pr) for pr in projects}
        positions, _ = quality.draw(args, projects, files, languages, explicit, notes)
    except (qc.MissingCorpus, AirgapError) as exc:
        print(f"next_line: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"next_line: {note}", file=sys.stderr)
    rng = random.Random(args.seed)
    drawn = [(pos, min(rng.randint(1, args.max_lines), pos.cut.line)) for pos in positions]
    drawn = [(pos, k) for pos, k in drawn if k > 0]  # a first line has nothing above
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="airgap-next-line-") as tmp:

        async def run() -> None:
            with tqdm(total=len(drawn), unit="position", file=sys.stderr) as bar:
                for project in projects:
                    todo = [(pos, k) for pos, k in drawn if pos.project is project]
                    if todo:
                        cases.extend(
                            await project_cases(args, project, todo, Path(tmp), bar, len(cases))
                        )

        asyncio.run(run())
    text = report(cases, args, time.perf_counter() - started)
    print(text)
    if args.write:
        with args.write.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "language": c.pos.language,
                        "kind": c.pos.kind,
                        "file": c.pos.relative,
                        "line": c.pos.cut.line,
                        "lines_above": c.lines,
                        "target": c.pos.cut.target,
                        **{
                            s: {
                                "text": a.text,
                                "exact": a.exact,
                                "failed": a.failed,
                                "ms": round(a.ms, 1),
                                "timings": a.timings,
                                "sources": a.sources,
                                "first_sources": a.first.get("context_sources"),
                            }
                            for s, a in c.answers.items()
                        },
                    }
                    for c in cases
                ],
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0 if cases else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
