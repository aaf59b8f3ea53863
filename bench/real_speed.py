"""Speed on real code: the quality benchmark's positions, a cold request at each, then typing
(`make bench`; alone: `.venv/bin/python bench/real_speed.py --per-language 10`).

Positions: those of bench/quality.py (the same sampler and seed: third-party Ada, SPARK and VHDL,
Python and C where the Debian corpus is unpacked), 3 in 5 at the start of a line. One server per
project (`python -m airgap_lsp serve` over stdio, default settings: cross-file context on), done
indexing and with its model loaded before the first position.

At each position:
1. **Cold**: the cut document opened and one completion asked (the user jumped there). Mid-line
   and line-start requests are reported apart (a line start may be answered with a block).
2. **Typing**: the next `--keys` characters of the line's real text typed one at a time, one
   every `--gap-ms` (150: a quick typist) or when the last answer came, whichever is later, each
   followed by the completion request an editor sends. A keystroke is answered either from the
   last suggestion (the user typed what it showed: no generation) or by a new generation, whose
   audit line says how many of its prompt tokens were read before (key/value cache reuse).
3. **Accepting a block's first statement**: where the cold suggestion was a block's first
   statement (its generation stopped there, and the rest is written ahead), the same request
   again, `--read-ms` (1,000) of reading, the statement inserted as an editor accepts it, and
   the request the editor then sends at its end: answered with the rest of the block, from the
   work done ahead or, where that did not fit, by a new generation.
4. **llama.cpp on the same prompts** (where llama-cpp-python is installed, `make team-server`):
   the prompt each generation audited, greedy, for the same number of new tokens, in this
   process, once the position's document is closed (so that the server's work ahead, the rest
   of a block, is stopped and the two never share the CPU), in the order the server got them,
   keeping its last prompt's key/values as the server does. The ratio of medians is
   airgap-lsp end to end over llama.cpp's generation alone, on the same requests.

Each step's cost comes from the audit lines: the debounce, choosing the context, prefill,
decoding, the rest of the server's work (the parse check, building the prompt), and the
remainder of the client's wait (the audit line's write and the protocol). Numbers vary with
the machine's load: compare within one run.
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pygls.exceptions import JsonRpcException
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_lift  # noqa: E402  (bench/ scripts import each other as modules)
import quality  # noqa: E402
import quality_corpus as qc  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py)
from quality_stats import percentile  # noqa: E402

from airgap_lsp.errors import AirgapError  # noqa: E402
from airgap_lsp.paths import DEFAULT_MODEL, model_store_root  # noqa: E402
from airgap_lsp.settings import parse_settings  # noqa: E402
from inference.store import ModelStore  # noqa: E402

KINDS = ("cold, mid-line", "cold, line start", "keystroke")
ACCEPTED = "after accepting a block's first statement"
STEPS = ("debounce_ms", "context_ms", "prefill_ms", "decode_ms", "rest_ms", "audit_and_wire_ms")


@dataclass(slots=True, kw_only=True)
class Answer:
    """One request: what kind, how long the client waited, and its audit line's timings."""

    kind: str  # KINDS
    language: str
    latency_ms: float
    # answered from the last suggestion, or from the rest of a block written ahead: no
    # generation on the request's path
    served: bool = False
    failed: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    prompt: str = ""
    llama_ms: float | None = None
    text: str = ""  # the suggestion
    stop: str = ""  # its generation's stop reason
    where: str = ""  # project/file:line:column
    exact: bool = False  # its first line is the line's real rest (bench/quality.py's score)

    @property
    def generated(self) -> bool:
        return not self.served and not self.failed and "prefill_ms" in self.timings

    def steps(self) -> dict[str, float]:
        t = self.timings
        server = t.get("server_ms", 0.0)
        rest = server - t.get("debounce_ms", 0) - t.get("context_ms", 0)
        rest -= t.get("prefill_ms", 0) + t.get("decode_ms", 0)
        return {
            "debounce_ms": t.get("debounce_ms", 0.0),
            "context_ms": t.get("context_ms", 0.0),
            "prefill_ms": t.get("prefill_ms", 0.0),
            "decode_ms": t.get("decode_ms", 0.0),
            "rest_ms": max(0.0, rest),
            "audit_and_wire_ms": max(0.0, self.latency_ms - server),
        }


class Llama:
    """llama.cpp on the default model's GGUF, as bench/speed.py runs it; None where it is not
    installed."""

    def __init__(self, folder: Path) -> None:
        import speed

        self.llm = speed.llama(folder)
        self.complete = speed.llama_complete

    def time(self, prompt: str, new_tokens: int) -> float:
        return float(self.complete(self.llm, prompt, new_tokens)[0])


async def ask(
    srv: context_lift.Server,
    pos: qc.Position,
    line: int,
    character: int,
    kind: str,
    timeout: float,
) -> Answer:
    """One request at a place of the position's document, and what its audit line says."""
    where = qc.corpus.Position(
        path=pos.cut.path, line=line, character=character, text="", target=""
    )
    try:
        text, ms, record = await srv.complete(where, timeout)
    except TimeoutError:
        return Answer(kind=kind, language=pos.language, latency_ms=timeout * 1000, failed="timeout")
    except JsonRpcException as exc:
        return Answer(kind=kind, language=pos.language, latency_ms=0, failed=str(exc))
    answer = Answer(
        kind=kind,
        language=pos.language,
        latency_ms=ms,
        served=bool({"served_from", "continues"} & set(record.get("result", {}))),
        timings=dict(record.get("timings", {})),
        prompt=str(record.get("prompt", "")),
        stop=str(record.get("decoding", {}).get("stop_reason", "")),
        text=text,
        where=f"{pos.project.name}/{pos.relative}:{line + 1}:{character + 1}",
        exact=quality.scored(text, pos.cut.target[character - pos.cut.character :]).exact,
    )
    if answer.generated:  # what llama.cpp is given: the prompt, and the start it was made to write
        answer.prompt += str(record["decoding"]["forced_prefix"])
    return answer


async def position(
    srv: context_lift.Server, pos: qc.Position, args: argparse.Namespace, llama: Llama | None
) -> list[Answer]:
    out = await typed(srv, pos, args)
    ahead = args.read_ms >= 0 and out[0].stop == "end_of_statement"
    if ahead and (rest := await accepted(srv, pos, args, out[0].text)) is not None:
        out.append(rest)
    # llama.cpp on the same prompts in the same order, once the document is closed (which stops
    # the server's work ahead, the rest of a block): the two never share the CPU.
    for answer in out:
        if llama is not None and answer.generated:
            new = int(answer.timings.get("new_tokens", 0))
            answer.llama_ms = llama.time(answer.prompt, new)
    return out


async def typed(
    srv: context_lift.Server, pos: qc.Position, args: argparse.Namespace
) -> list[Answer]:
    cut = pos.cut
    srv.open(cut, qc.LSP_ID[pos.language])
    kind = "cold, line start" if pos.kind == qc.LINE_START else "cold, mid-line"
    try:
        out = [await ask(srv, pos, cut.line, cut.character, kind, args.timeout)]
        typed = cut.target[: args.keys]
        # Only where the line goes on past what is typed: a request after its last character
        # would ask for the next line.
        if len(cut.target.rstrip()) > len(typed):
            uri = cut.path.as_uri()
            for n, ch in enumerate(typed, 1):
                last = time.perf_counter()
                context_lift.insert(srv.client, uri, 1 + n, cut.line, cut.character + n - 1, ch)
                out.append(
                    await ask(srv, pos, cut.line, cut.character + n, "keystroke", args.timeout)
                )
                # The next key comes `gap` after this one, or now where the answer took longer.
                # (the simulated typist's pace, not a wait on the server)
                if (wait := args.gap_ms / 1000 - (time.perf_counter() - last)) > 0:
                    await asyncio.sleep(wait)
        return out
    finally:
        srv.close(cut)


async def accepted(
    srv: context_lift.Server, pos: qc.Position, args: argparse.Namespace, shown: str
) -> Answer | None:
    """A block's first statement accepted after `--read-ms` of reading it: the request the
    editor sends at its end, answered with the rest of the block written meanwhile. None where
    asking again did not show the same statement (nothing to accept)."""
    cut = pos.cut
    srv.open(cut, qc.LSP_ID[pos.language])
    try:
        # The same request again (its prompt read before: the same statement, at once).
        first = await ask(srv, pos, cut.line, cut.character, "", args.timeout)
        if first.failed or first.stop != "end_of_statement" or first.text != shown:
            return None
        # (the simulated reader's pace, not a wait on the server)
        await asyncio.sleep(args.read_ms / 1000)
        context_lift.insert(srv.client, cut.path.as_uri(), 2, cut.line, cut.character, first.text)
        lines = first.text.split("\n")
        column = (cut.character if len(lines) == 1 else 0) + len(lines[-1])
        rest = await ask(srv, pos, cut.line + len(lines) - 1, column, ACCEPTED, args.timeout)
        rest.exact = False  # (the line's real rest is not what comes after a statement)
        return rest
    finally:
        srv.close(cut)


async def project_run(
    project: qc.Project,
    todo: list[qc.Position],
    args: argparse.Namespace,
    tmp: Path,
    llama: Llama | None,
    bar: tqdm,
) -> list[Answer]:
    log = tmp / f"server-{project.name}.log"
    srv = context_lift.Server(
        project.root, tmp / f"audit-{project.name}.jsonl", args.model, args.settings, log
    )
    bar.set_description(f"{project.name}: indexing")
    try:
        await srv.start(args.index_timeout)
        bar.set_description(f"{project.name}: loading the model")
        first = qc.corpus.Position(
            path=todo[0].cut.path, line=0, character=0, text=todo[0].cut.text, target=""
        )
        srv.open(first, qc.LSP_ID[todo[0].language])
        try:
            await srv.complete(first, args.timeout + 600)
        finally:
            srv.close(first)
        bar.set_description(project.name)
        out: list[Answer] = []
        for pos in todo:
            out += await position(srv, pos, args, llama)
            bar.update(1)
        return out
    except (TimeoutError, JsonRpcException) as exc:
        raise RuntimeError(
            f"{project.name}: {exc or type(exc).__name__}{quality.tail({'a': log})}"
        ) from exc
    finally:
        await srv.end()


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def rows_of(answers: list[Answer]) -> list[tuple[str, list[Answer]]]:
    ok = [a for a in answers if not a.failed]
    keys = [a for a in ok if a.kind == "keystroke"]
    return [
        ("cold, mid-line", [a for a in ok if a.kind == "cold, mid-line"]),
        ("cold, line start (first suggestion)", [a for a in ok if a.kind == "cold, line start"]),
        ("keystroke, every one", keys),
        ("keystroke, answered by a generation", [a for a in keys if a.generated]),
        ("keystroke, from the last suggestion (no generation)", [a for a in keys if a.served]),
        (ACCEPTED, [a for a in ok if a.kind == ACCEPTED]),
    ]


def report(
    answers: list[Answer],
    args: argparse.Namespace,
    seconds: float,
    load: tuple[float, float],
) -> list[str]:
    out = [
        f"## Speed on real code: {datetime.now(UTC):%Y-%m-%d}, {describe()}",
        "",
        f"`bench/real_speed.py --per-language {args.per_language} --keys {args.keys} "
        f"--gap-ms {args.gap_ms:g}"
        + (f" --settings '{json.dumps(args.settings)}'" if args.settings else "")
        + f"`, commit {quality.commit()}, model {args.model}; "
        f"{seconds / 60:.1f} min, load average {load[0]:.1f} at the start and {load[1]:.1f} "
        "at the end. Latency is the client's wait. Prompt tokens and reuse (the share of prompt "
        "tokens whose key/values were kept from the request before) are over the generations "
        "(a request with no suggestion has no audit line: it counts in n, not there; "
        "`without`: answered with no generation on its path). "
        "llama.cpp ran each generation's audited prompt for the same number of new tokens, "
        "after the position's typing, in the same order; the ratio is of the medians of the "
        "same requests.",
        "",
        "| request | n | p50 ms | p95 ms | exact match | generations | prompt tokens, median "
        "| reused | llama.cpp p50 ms | airgap-lsp / llama.cpp |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in rows_of(answers):
        if not rows:
            continue
        lat = [a.latency_ms for a in rows]
        gens = [a for a in rows if a.generated]
        served = sum(a.served for a in rows)
        without = f" ({served} without)" if served else ""
        tokens = sum(a.timings.get("prompt_tokens", 0) for a in gens)
        reused = sum(a.timings.get("reused_prompt_tokens", 0) for a in gens)
        prompt = (
            statistics.median(a.timings.get("prompt_tokens", 0) for a in gens) if gens else None
        )
        pairs = [(a.latency_ms, a.llama_ms) for a in gens if a.llama_ms is not None]
        theirs = statistics.median(p[1] for p in pairs) if pairs else None
        ratio = f"{statistics.median(p[0] for p in pairs) / theirs:.2f}" if theirs else "-"
        share = f"{100 * reused / tokens:.0f} %" if tokens else "-"
        out.append(
            f"| {name} | {len(rows)} | {ms(percentile(lat, 50))} | {ms(percentile(lat, 95))} "
            f"| {sum(a.exact for a in rows)} | {len(gens)}{without} | {ms(prompt)} | {share} "
            f"| {ms(theirs)} | {ratio} |"
        )
    out += [
        "",
        "Each step's cost, median ms over the generations (`rest`: the server's other work, "
        "the parse check and building the prompt; `audit and wire`: the client's wait past the "
        "server's, the audit line's write and the protocol):",
        "",
        "| request | " + " | ".join(s.removesuffix("_ms").replace("_", " ") for s in STEPS) + " |",
        "|---|" + "---|" * len(STEPS),
    ]
    for name, rows in rows_of(answers):
        costs = [a.steps() for a in rows if a.generated]
        if costs and name != "keystroke, every one":
            cells = [f"{statistics.median(c[k] for c in costs):,.0f}" for k in STEPS]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += [
        "",
        "By language, p50 / p95 ms (n):",
        "",
        "| language | " + " | ".join(KINDS) + " (generated) |",
        "|---|" + "---|" * len(KINDS),
    ]
    for lang in sorted({a.language for a in answers}):
        cells = []
        for kind in KINDS:
            lat = [
                a.latency_ms
                for a in answers
                if a.language == lang and a.kind == kind and a.generated
            ]
            cells.append(f"{ms(percentile(lat, 50))} / {ms(percentile(lat, 95))} ({len(lat)})")
        out.append(f"| {lang} | " + " | ".join(cells) + " |")
    failed = [a for a in answers if a.failed]
    if failed:
        out += ["", f"{len(failed)} requests failed: {failed[0].failed} (the first)."]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=20, help="positions per language")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--languages", help="comma-separated, of: " + ", ".join(qc.LANGUAGES))
    parser.add_argument("--corpus", type=Path, default=quality.DEFAULT_CORPUS)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME@VERSION in the store")
    parser.add_argument("--keys", type=int, default=5, help="characters typed at each position")
    parser.add_argument("--gap-ms", type=float, default=150, help="the typist's pace")
    parser.add_argument("--no-llama", action="store_true", help="leave llama.cpp out")
    parser.add_argument(
        "--read-ms",
        type=float,
        default=1000,
        help="where a block's first statement was shown: how long the user reads it before "
        "accepting it (-1: no such step)",
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds per request")
    parser.add_argument("--index-timeout", type=float, default=900, help="seconds per index")
    parser.add_argument(
        "--settings",
        default="{}",
        help="the servers' settings, as an editor sends them (JSON; default: none, so the "
        'defaults), e.g. \'{"decoding": {"promptLookup": 0}}\'',
    )
    parser.add_argument("--write", type=Path, help="append the report (markdown) to this file")
    parser.add_argument("--json", type=Path, help="write every request's figures here")
    args = parser.parse_args()
    if args.per_language < 1 or args.keys < 0:
        parser.error("--per-language must be at least 1 and --keys not negative")
    try:
        args.settings = json.loads(args.settings)
        parse_settings(args.settings)
    except (ValueError, AirgapError) as exc:
        parser.error(f"--settings: {exc}")
    notes: list[str] = []
    try:
        args.model = "@".join(ModelStore(model_store_root()).resolve(args.model))
        positions, languages, projects = quality.drawn(args, notes)
    except (qc.MissingCorpus, AirgapError) as exc:
        print(f"real_speed: {exc}", file=sys.stderr)
        return 2
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    answers: list[Answer] = []
    with tempfile.TemporaryDirectory(prefix="airgap-real-speed-") as tmp:
        llama: Llama | None = None
        if not args.no_llama:
            try:
                llama = Llama(Path(tmp))
            except ImportError:
                notes.append("llama.cpp is not installed (`make team-server`): no ratio.")

        async def run() -> None:
            with tqdm(total=len(positions), unit="position", file=sys.stderr) as bar:
                for project in projects:
                    todo = [x for x in positions if x.project is project]
                    if todo:
                        answers.extend(
                            await project_run(project, todo, args, Path(tmp), llama, bar)
                        )

        try:
            asyncio.run(run())
        except RuntimeError as exc:
            print(f"real_speed: {exc}", file=sys.stderr)
            return 1
    lines = report(answers, args, time.perf_counter() - started, (load_start, os.getloadavg()[0]))
    text = "\n".join(lines + ["", *(f"- {n}" for n in notes)]).rstrip() + "\n"
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps([{**asdict(a), "prompt": len(a.prompt)} for a in answers], indent=1),
            encoding="utf-8",
        )
    if args.write:
        with args.write.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
