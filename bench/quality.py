"""Completion quality on code nobody here wrote, through the real server, beside a plain
reference on the same model (`make bench`; alone: `.venv/bin/python bench/quality.py
--per-language 10` for a quick look).

Positions (bench/quality_corpus.py): Ada, SPARK and VHDL from the corpus folder's projects,
Python and C from Debian's packages; 3 in 5 at the start of an indented line, the rest mid-line;
spread over the projects and their files with a fixed seed. The document sent is the file with
the rest of the cursor's line removed; the expected answer is what was removed.

Four answers per position, asked in turn (the order rotates from one position to the next):
- a: the server with its default settings (cross-file context on);
- b: the server with `{"context": {"crossFile": false}}`;
- c1, c2: the plain reference of bench/quality_reference.py, as written and healed.
The servers are real (`python -m airgap_lsp serve` over stdio), two per project: one per
setting, each with the project folder as its workspace folder, each with its own key/value
cache, both done indexing before the first request. Each position is a fresh didOpen of the
cut document, one inlineCompletion (trigger kind Invoked), then didClose.

Scores, on the answer's first line (the text that lands on the cursor's line): exact match when
it equals the expected text, both stripped of whitespace at both ends (at a line start, the
expected text is the line's code without the indentation typed; a missing or extra blank at the
cursor is not counted); edit similarity, 1 - Levenshtein distance / the longer length, on the
same stripped texts (written here: rapidfuzz is not a dependency). An answer is empty when the
server sent no item or only whitespace; a failed request (an error or a timeout) is counted
apart and scores 0. Latency: for the server, the client's wall time of the request (the server's
debounce, context retrieval, prefill and decoding); for the reference, retrieval, prefill and
decoding in this process, with no key/value cache kept between requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pygls.exceptions import JsonRpcException
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_lift  # noqa: E402  (bench/ scripts import each other as modules)
import corpus  # noqa: E402
import quality_corpus as qc  # noqa: E402
from machine import describe  # noqa: E402  (bench/machine.py)
from quality_reference import Reference  # noqa: E402
from quality_stats import (  # noqa: E402
    bootstrap_interval,
    edit_similarity,
    percentile,
    sign_test,
)

from airgap_lsp.errors import AirgapError  # noqa: E402
from airgap_lsp.paths import DEFAULT_MODEL, model_store_root  # noqa: E402
from airgap_lsp.settings import Settings  # noqa: E402
from inference.store import ModelStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
SYSTEMS = ("a", "b", "c1", "c2")
SERVERS = ("a", "b")
NAMES = {
    "a": "server, cross-file context (default settings)",
    "b": 'server, `{"context": {"crossFile": false}}`',
    "c1": "plain reference, as written",
    "c2": "plain reference, healed",
}
SERVER_SETTINGS: dict[str, dict[str, Any]] = {"a": {}, "b": {"context": {"crossFile": False}}}
COMPARISONS = (("a", "b"), ("a", "c1"), ("a", "c2"))
ALL = "All"
MAX_FAILURES_IN_A_ROW = 3
# The server's log lines that say why a request got no suggestion.
NO_SUGGESTION = re.compile(r"no suggestion: the model wrote (.*) \((\w+)\)\s*$")
WITHHELD = "suggestion withheld"


@dataclass(slots=True, kw_only=True)
class Result:
    text: str = ""  # the whole answer as the editor would insert it
    failed: str = ""  # why the request failed; "" when it did not
    latency_ms: float | None = None
    exact: bool = False
    similarity: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.failed and not self.text.strip()


@dataclass(slots=True)
class Case:
    pos: qc.Position
    results: dict[str, Result] = field(default_factory=dict)


def scored(text: str, target: str, **kw: Any) -> Result:
    got, want = text.split("\n")[0].strip(), target.strip()
    return Result(text=text, exact=got == want, similarity=edit_similarity(got, want), **kw)


# -- running ------------------------------------------------------------------------------------
class Run:
    """The servers of each project in turn, and the reference beside them."""

    def __init__(self, args: argparse.Namespace, reference: Reference, tmp: Path) -> None:
        self.args, self.reference, self.tmp = args, reference, tmp
        self.server_dtype = ""
        self.index_messages: dict[str, str] = {}

    async def project(
        self, project: qc.Project, files: qc.Files, todo: list[qc.Position], bar: tqdm
    ) -> list[Case]:
        for family in {qc.FAMILY[p.language] for p in todo}:
            self.reference.index(project.root, family, files.family.get(family, []))
        logs = {s: self.tmp / f"server-{project.name}-{s}.log" for s in SERVERS}
        servers = {
            s: context_lift.Server(
                project.root,
                self.tmp / f"audit-{project.name}-{s}.jsonl",
                self.args.model,
                SERVER_SETTINGS[s],
                logs[s],
            )
            for s in SERVERS
        }
        bar.set_description(f"{project.name}: indexing")
        started = [
            asyncio.ensure_future(srv.start(self.args.index_timeout)) for srv in servers.values()
        ]
        try:
            try:
                await asyncio.gather(*started)
            except TimeoutError as exc:
                raise RuntimeError(
                    f"{project.name}: the server did not finish indexing in "
                    f"{self.args.index_timeout:.0f} s{tail(logs)}"
                ) from exc
            self.index_messages[project.name] = servers["a"].index_message
            bar.set_description(f"{project.name}: loading the model")
            for s, srv in servers.items():  # the model loads at the first request: not counted
                await self.warm_up(srv, todo[0], s, logs)
            tails = {s: LogTail(logs[s]) for s in SERVERS}  # from here on: the positions' lines
            bar.set_description(project.name)
            cases = []
            failures = Counter[str]()
            for k, pos in enumerate(todo):
                case = Case(pos)
                order = ("a", "b", "c")[k % 3 :] + ("a", "b", "c")[: k % 3]
                for s in order:
                    if s == "c":
                        c1, c2 = self.reference.complete(pos)
                        for name, ans in (("c1", c1), ("c2", c2)):
                            case.results[name] = scored(
                                ans.text,
                                pos.cut.target,
                                latency_ms=ans.latency_ms,
                                detail={
                                    "forced": ans.forced,
                                    "windows": ans.windows,
                                    "prompt_tokens": ans.prompt_tokens,
                                    "new_tokens": ans.new_tokens,
                                },
                            )
                        continue
                    result = await self.ask(servers[s], pos, tails[s])
                    case.results[s] = result
                    failures[s] = failures[s] + 1 if result.failed else 0
                    if failures[s] >= MAX_FAILURES_IN_A_ROW:
                        raise RuntimeError(
                            f"{project.name}: server {s} failed {failures[s]} requests in a row, "
                            f"the last: {result.failed}{tail({s: logs[s]})}"
                        )
                cases.append(case)
                bar.update(1)
            return cases
        finally:
            for srv in servers.values():
                await srv.end()

    async def warm_up(
        self, srv: context_lift.Server, pos: qc.Position, s: str, logs: dict[str, Path]
    ) -> None:
        """A request at the document's very start: the model loads, no position is asked."""
        first = corpus.Position(
            path=pos.cut.path, line=0, character=0, text=pos.cut.text, target=""
        )
        srv.open(first, qc.LSP_ID[pos.language])
        try:
            await srv.complete(first, self.args.timeout + 600)
        except (TimeoutError, JsonRpcException) as exc:
            raise RuntimeError(
                f"server {s} did not answer its first request ({exc or type(exc).__name__})"
                f"{tail({s: logs[s]})}"
            ) from exc
        finally:
            srv.close(first)

    async def ask(self, srv: context_lift.Server, pos: qc.Position, log: LogTail) -> Result:
        srv.open(pos.cut, qc.LSP_ID[pos.language])
        try:
            text, ms, record = await srv.complete(pos.cut, self.args.timeout)
        except TimeoutError:
            return Result(failed=f"no answer in {self.args.timeout:.0f} s")
        except JsonRpcException as exc:
            return Result(failed=str(exc) or type(exc).__name__)
        finally:
            srv.close(pos.cut)
        detail: dict[str, Any] = {}
        if record:
            decoding = record.get("decoding", {})
            self.server_dtype = self.server_dtype or str(record.get("dtype", ""))
            detail = {
                "stop_reason": decoding.get("stop_reason"),
                "multiline": decoding.get("multiline"),
                "forced_prefix": decoding.get("forced_prefix"),
                "prompt_tokens": record.get("timings", {}).get("prompt_tokens"),
                "new_tokens": record.get("timings", {}).get("new_tokens"),
                "context_sources": len(record.get("context_sources", [])),
                "prompt_tail": record.get("prompt", "")[-200:],
            }
        result = scored(text, pos.cut.target, latency_ms=ms, detail=detail)
        # Requests are asked one at a time, and the server logs before it replies: the lines
        # since the last request are this one's.
        for line in log.new_lines():
            if m := NO_SUGGESTION.search(line):
                result.detail["why_empty"] = f"{m.group(2)}: the model wrote {m.group(1)[:40]}"
            elif WITHHELD in line:
                result.detail["why_empty"] = "withheld: it breaks the parse of its block"
                result.detail["withheld"] = line.split(WITHHELD, 1)[1][:300]
        return result


class LogTail:
    """The lines a server's log gained since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.is_file() else 0

    def new_lines(self) -> list[str]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()


def tail(logs: dict[str, Path], lines: int = 15) -> str:
    out = []
    for s, log in logs.items():
        if log.is_file():
            last = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            out.append(f"\n--- the end of server {s}'s log ({log}):\n" + "\n".join(last))
    return "".join(out)


# -- the report ---------------------------------------------------------------------------------
def subsets(cases: list[Case], languages: list[str]) -> list[tuple[str, str, list[Case]]]:
    out = []
    for language in [*languages, ALL] if len(languages) > 1 else languages:
        of_lang = [c for c in cases if language in (ALL, c.pos.language)]
        for kind in ("all", *qc.KINDS):
            chosen = [c for c in of_lang if kind in ("all", c.pos.kind)]
            if chosen:
                out.append((language, kind, chosen))
    return out


def table(
    cases: list[Case], languages: list[str], cell: Callable[[list[Result]], str]
) -> list[str]:
    out = [
        "| language | positions | " + " | ".join(f"({s})" for s in SYSTEMS) + " |",
        "|---|---|" + "---|" * len(SYSTEMS),
    ]
    for language, kind, chosen in subsets(cases, languages):
        label = language if kind == "all" else f"… {kind}"
        cells = [cell([c.results[s] for c in chosen]) for s in SYSTEMS]
        out.append(f"| {label} | {len(chosen)} | " + " | ".join(cells) + " |")
    return out


def exact_cell(rs: list[Result]) -> str:
    right = sum(r.exact for r in rs)
    return f"{100 * right / len(rs):.1f} % ({right})"


def similarity_cell(rs: list[Result]) -> str:
    return f"{statistics.fmean(r.similarity for r in rs):.3f}"


def empty_cell(rs: list[Result]) -> str:
    empty, failed = sum(r.empty for r in rs), sum(bool(r.failed) for r in rs)
    return f"{100 * (empty + failed) / len(rs):.1f} % ({empty}" + (
        f" + {failed} failed)" if failed else ")"
    )


def latency_cell(rs: list[Result]) -> str:
    ms = [r.latency_ms for r in rs if r.latency_ms is not None and not r.failed]
    p50, p95 = percentile(ms, 50), percentile(ms, 95)
    return "-" if p50 is None or p95 is None else f"{p50:,.0f} / {p95:,.0f}"


def paired(cases: list[Case], languages: list[str], seed: int) -> list[str]:
    out = [
        "| language | comparison | positions | exact match | other | difference (95 % "
        "bootstrap interval) | (a) right, other wrong / the reverse | sign test p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for language, kind, chosen in subsets(cases, languages):
        if kind != "all":
            continue
        for mine, other in COMPARISONS:
            a = [c.results[mine].exact for c in chosen]
            b = [c.results[other].exact for c in chosen]
            won = sum(x and not y for x, y in zip(a, b, strict=True))
            lost = sum(y and not x for x, y in zip(a, b, strict=True))
            low, high = bootstrap_interval(a, b, seed)
            diff = 100 * (sum(a) - sum(b)) / len(a)
            out.append(
                f"| {language} | ({mine}) vs ({other}) | {len(a)} | {100 * sum(a) / len(a):.1f} % "
                f"| {100 * sum(b) / len(b):.1f} % | {diff:+.1f} points ({low:+.1f} to {high:+.1f}) "
                f"| {won} / {lost} | {sign_test(won, lost):.3f} |"
            )
    return out


def spread(cases: list[Case], languages: list[str], run: Run) -> list[str]:
    out = [
        "| language | project | positions: line start / mid-line | files with positions | "
        "the server's index |",
        "|---|---|---|---|---|",
    ]
    for language in languages:
        by_project: dict[str, list[Case]] = {}
        for c in cases:
            if c.pos.language == language:
                by_project.setdefault(c.pos.project.name, []).append(c)
        for name, cs in sorted(by_project.items()):
            kinds = Counter(c.pos.kind for c in cs)
            files = len({c.pos.cut.path for c in cs})
            out.append(
                f"| {language} | {name} | {kinds[qc.LINE_START]} / {kinds[qc.MID_LINE]} | "
                f"{files} | {run.index_messages.get(name, '')} |"
            )
    return out


def diagnostics(cases: list[Case]) -> list[str]:
    out = [
        "| | failed | empty | first line blank, text below | more than one line | "
        "mean prompt tokens | why empty (the server's log) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SYSTEMS:
        rs = [c.results[s] for c in cases]
        blank = sum(bool(r.text.strip()) and not r.text.split("\n")[0].strip() for r in rs)
        lines = sum("\n" in r.text.strip("\n") for r in rs)
        tokens = [r.detail["prompt_tokens"] for r in rs if r.detail.get("prompt_tokens")]
        reasons = Counter(r.detail.get("why_empty", "no reason in the log") for r in rs if r.empty)
        why = "; ".join(f"{n}× {md(r)}" for r, n in reasons.most_common(4)) if s in SERVERS else ""
        mean_tokens = f"{statistics.fmean(tokens):.0f}" if tokens else "-"
        out.append(
            f"| ({s}) | {sum(bool(r.failed) for r in rs)} | {sum(r.empty for r in rs)} | "
            f"{blank} | {lines} | {mean_tokens} | {why} |"
        )
    return out


def md(text: str) -> str:
    """Text that cannot break a markdown table's row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def commit() -> str:
    """The commit of the code measured: the tree the server runs from (`context_lift.SERVER_ROOT`,
    where `lsp_server` is imported from), named where it is not this script's checkout. A script
    run from another worktree still imports the main checkout's code through the editable
    install, unless PYTHONPATH points at that worktree: the report says which ran."""
    root = context_lift.SERVER_ROOT

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    where = "" if root == ROOT else f" (the code of {root}, not of this script's checkout {ROOT})"
    return head + (" with uncommitted changes" if dirty else "") + where


def report(
    cases: list[Case],
    languages: list[str],
    run: Run,
    args: argparse.Namespace,
    notes: list[str],
    wall_s: float,
    load: tuple[float, float],
) -> str:
    server = Settings()
    ms = {
        s: statistics.fmean(c.results[s].latency_ms or 0.0 for c in cases) / 1000 for s in SYSTEMS
    }
    lines = [
        "# Completion quality on held-out code",
        "",
        "Written by `bench/quality.py` (its docstring says how positions are drawn and scored).",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- machine: {describe()}; load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end",
        f"- commit: {commit()}",
        f"- model: {run.reference.ref}; the reference in {run.reference.dtype}, the server in "
        f"{run.server_dtype or 'its default dtype'}",
        f"- settings: `--per-language {args.per_language} --seed {args.seed} --languages "
        f"{','.join(languages).lower()}`; corpus {args.corpus}; Debian corpus {corpus.CORPUS}",
        f"- server: default settings (lines up to {server.max_tokens_line} tokens, blocks up to "
        f"{server.max_tokens_block}, context {server.context_max_tokens} tokens), "
        f"{args.timeout:.0f} s per request; reference: up to "
        f"{run.reference.max_new_tokens} new tokens, stopped at the first line",
        f"- wall time {wall_s / 60:.1f} min for {len(cases)} positions; mean seconds per "
        "position: " + ", ".join(f"({s}) {ms[s]:.2f}" for s in SYSTEMS),
        "",
        "Systems: " + "; ".join(f"({s}) {NAMES[s]}" for s in SYSTEMS) + ".",
        "",
    ]
    for note in notes:
        lines.append(f"> {note}")
    if notes:
        lines.append("")
    sections = (
        ("Exact match of the first line", exact_cell),
        ("Edit similarity of the first line (1 - normalized Levenshtein)", similarity_cell),
        ("Empty answers (and failed requests)", empty_cell),
        ("Latency, ms: p50 / p95", latency_cell),
    )
    for title, cell in sections:
        lines += [f"## {title}", "", *table(cases, languages, cell), ""]
    lines += [
        "## Paired differences in exact match",
        "",
        "Per position, (a) against each other system. The interval resamples positions "
        f"({10_000:,} rounds, seed {args.seed}); the sign test counts only the positions where "
        "exactly one of the two is right.",
        "",
        *paired(cases, languages, args.seed),
        "",
        "## Where the positions come from",
        "",
        *spread(cases, languages, run),
        "",
        "## What the answers looked like",
        "",
        *diagnostics(cases),
        "",
    ]
    return "\n".join(lines)


# -- the command --------------------------------------------------------------------------------
def choose_languages(arg: str | None) -> tuple[list[str], bool]:
    """The languages asked for, in the usual order, and whether they were named explicitly."""
    if arg is None:
        return list(qc.LANGUAGES), False
    known = {lang.lower(): lang for lang in qc.LANGUAGES}
    wanted = [w.strip().lower() for w in arg.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(
            f"unknown language(s) {', '.join(unknown)}: choose from {', '.join(qc.LANGUAGES)}"
        )
    return [lang for lang in qc.LANGUAGES if lang.lower() in wanted], True


def gather(
    args: argparse.Namespace, languages: list[str], explicit: bool, notes: list[str]
) -> tuple[list[qc.Project], list[str]]:
    """The projects, and the languages left to measure. A language named on the command line
    whose projects are missing stops the run; one asked by default is left out with a note."""
    wanted = set(languages)
    projects = qc.corpus_projects(args.corpus) if {"Ada", "SPARK", "VHDL"} & wanted else []
    debian, missing = qc.debian_projects(languages)
    if missing:
        lacking = sorted({lang for lang, _ in missing})
        message = (
            f"the Debian corpus under {corpus.CORPUS} lacks "
            + ", ".join(dict.fromkeys(role for _, role in missing))
            + f" ({', '.join(lacking)}): unpack it with `sh {corpus.SETUP}` (as root)"
        )
        if explicit:
            raise qc.MissingCorpus(message)
        lost = [lang for lang in lacking if not any(p.languages == (lang,) for p in debian)]
        print(f"quality: {message}; going on without it", file=sys.stderr)
        notes.append(
            f"{message[0].upper()}{message[1:]}. "
            + (f"Not measured here: {', '.join(lost)}." if lost else "Measured without it.")
        )
        languages = [lang for lang in languages if lang not in lost]
    return projects + debian, languages


def drawn(
    args: argparse.Namespace, notes: list[str]
) -> tuple[list[qc.Position], list[str], list[qc.Project]]:
    """The positions `args` asks for (its `languages`, `corpus`, `per_language` and `seed`, as
    this script takes them), the languages measured and the projects in their order, as `main`
    draws them; what was left out goes into `notes`. Raises qc.MissingCorpus (for the other
    benchmarks that ask the same positions)."""
    languages, explicit = choose_languages(args.languages)
    projects, languages = gather(args, languages, explicit, notes)
    files = {p.name: qc.scan(p) for p in projects}
    return (*draw(args, projects, files, languages, explicit, notes), projects)


def draw(
    args: argparse.Namespace,
    projects: list[qc.Project],
    files: dict[str, qc.Files],
    languages: list[str],
    explicit: bool,
    notes: list[str],
) -> tuple[list[qc.Position], list[str]]:
    positions: list[qc.Position] = []
    measured = []
    for language in languages:
        got = qc.sample(projects, files, language, args.per_language, args.seed)
        have = sum(bool(files[p.name].cursor.get(language)) for p in projects)
        if not got:
            message = f"no {language} file with a position in any project of {args.corpus}"
            if explicit:
                raise qc.MissingCorpus(message)
            notes.append(f"Not measured: {message}.")
            continue
        if have < qc.MIN_PROJECTS or len(got) < args.per_language:
            notes.append(
                f"{language}: {len(got)} positions from {len({p.project.name for p in got})} "
                f"projects, of the {have} that hold {language} files (asked: "
                f"{args.per_language} positions, at least {qc.MIN_PROJECTS} projects)."
            )
        positions += got
        measured.append(language)
    if not positions:
        raise qc.MissingCorpus(f"no position in any language: {'; '.join(notes)}")
    return positions, measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=100, help="positions per language")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--languages",
        help="comma-separated, of: " + ", ".join(qc.LANGUAGES) + " (default: all; Python and C "
        "are left out with a note when the Debian corpus is not unpacked)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="a folder of project folders (default: %(default)s)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME@VERSION in the store")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per request")
    parser.add_argument("--index-timeout", type=float, default=900, help="seconds per index")
    parser.add_argument("--write", type=Path, help="write the report (markdown) here too")
    parser.add_argument("--json", type=Path, help="write every position and answer here")
    args = parser.parse_args()
    if args.per_language < 1:
        parser.error("--per-language must be at least 1")
    languages, explicit = choose_languages(args.languages)
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    notes: list[str] = []
    try:
        args.model = "@".join(ModelStore(model_store_root()).resolve(args.model))
        projects, languages = gather(args, languages, explicit, notes)
        files = {p.name: qc.scan(p) for p in projects}
        positions, languages = draw(args, projects, files, languages, explicit, notes)
    except (qc.MissingCorpus, AirgapError) as exc:
        print(f"quality: {exc}", file=sys.stderr)
        return 2
    print(f"quality: loading {args.model} for the reference", file=sys.stderr)
    try:
        reference = Reference(model_store_root(), args.model, Settings().max_tokens_line)
    except AirgapError as exc:
        print(f"quality: {exc}", file=sys.stderr)
        return 2
    cases: list[Case] = []
    order = [p for p in projects if any(x.project is p for x in positions)]
    with tempfile.TemporaryDirectory(prefix="airgap-quality-") as tmp:
        run = Run(args, reference, Path(tmp))

        async def all_projects() -> None:
            with tqdm(total=len(positions), unit="position", file=sys.stderr) as bar:
                for project in order:
                    todo = [x for x in positions if x.project is project]
                    cases.extend(await run.project(project, files[project.name], todo, bar))

        try:
            asyncio.run(all_projects())
        except RuntimeError as exc:
            print(f"quality: {exc}", file=sys.stderr)
            return 1
    text = report(
        cases,
        languages,
        run,
        args,
        notes,
        time.perf_counter() - started,
        (load_start, os.getloadavg()[0]),
    )
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([as_json(c) for c in cases], indent=1), encoding="utf-8")
    silent = [s for s in SYSTEMS if not any(c.results[s].text.strip() for c in cases)]
    if silent and len(cases) >= 5:
        print(
            f"quality: ({'), ('.join(silent)}) answered nothing at all on {len(cases)} positions: "
            "that is a fault to look into, not a score",
            file=sys.stderr,
        )
        return 1
    return 0


def as_json(case: Case) -> dict[str, Any]:
    pos = case.pos
    return {
        "language": pos.language,
        "project": pos.project.name,
        "file": pos.relative,
        "line": pos.cut.line,
        "character": pos.cut.character,
        "kind": pos.kind,
        "typed": pos.typed,
        "target": pos.cut.target,
        **{
            s: {
                "text": r.text,
                "exact": r.exact,
                "similarity": round(r.similarity, 4),
                "empty": r.empty,
                "failed": r.failed,
                "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 1),
                **r.detail,
            }
            for s, r in case.results.items()
        },
    }


if __name__ == "__main__":
    sys.exit(main())
