"""What cross-file context is worth: single-line completions on real third-party code, with and
without it, through the real server on the default model (`make bench`).

For each language, one project of code that Debian ships (`bench/setup-corpus.sh` fetches it) is
copied into a temporary workspace. Cursor positions are drawn with a fixed seed from lines of code
(no comment, no string): the cursor goes after the first third of the line, and the rest of the
line is removed from the document sent (didOpen of the edited text). The target is what was
removed. One server per language, started with that workspace as its folder, indexes it (we wait
for the work-done progress end that says "indexed"); then each position is asked twice, with
`context.crossFile` on and off, switched with `workspace/didChangeConfiguration` between the two
requests (the order alternates from one position to the next). Only the edited document is open,
so the "recent documents" source of context is empty: what the index gives is what is measured.

Scores, on the first line of the suggestion and the target, both stripped: exact match, and edit
similarity (difflib's ratio). An empty suggestion scores 0. Prompt tokens come from the audit lines
(a temporary audit log: the user's is untouched); an empty suggestion has no audit line.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

import lsp_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/corpus.py: run as a script, not as a package)
from machine import describe  # noqa: E402  (bench/machine.py)

# The server runs from the tree this script imports `lsp_server` from (PYTHONPATH can point at
# another checkout, e.g. a clean `git archive` of a commit).
SERVER_ROOT = Path(lsp_server.__file__).resolve().parents[1]
# The command's module in that tree: `airgap_lsp`, or `lsp_server` in a checkout from before it.
SERVER_MODULE = "airgap_lsp" if (SERVER_ROOT / "airgap_lsp").is_dir() else "lsp_server"
CONDITIONS = ("off", "on")
SETTINGS = {"off": {"context": {"crossFile": False}}, "on": {"context": {"crossFile": True}}}


@dataclass(slots=True)
class Outcome:
    suggestion: str = ""
    exact: bool = False
    similarity: float = 0.0
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    sources: int | None = None
    line_in_prompt: bool | None = None  # the whole original line is in the prompt: copyable
    prompt_tail: str = ""  # the end of the prompt, to check what the model saw last
    prompt_format: str = ""


@dataclass(slots=True)
class Row:
    language: str
    files: int = 0
    cursor_files: int = 0
    index_message: str = ""
    packages: list[str] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)


def insert(
    client: LanguageClient, uri: str, version: int, line: int, character: int, text: str
) -> None:
    """The editor's didChange for `text` typed (or a suggestion accepted) at a position."""
    at = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


def score(suggestion: str, target: str) -> tuple[bool, float]:
    got = suggestion.split("\n")[0].strip()
    want = target.strip()
    return got == want, difflib.SequenceMatcher(None, got, want).ratio()


class Server:
    """The real server over stdio, with what an editor answers: progress tokens, messages."""

    def __init__(
        self,
        workspace: Path,
        audit: Path,
        model: str = "",
        settings: dict[str, Any] | None = None,
        log: Path | None = None,
    ) -> None:
        """`settings`: the initialization options besides the audit path and the model (default:
        context on); `log`: a file for the server's stderr (default: a pipe nobody reads, which
        fills and stops the server after some 64 KB of log lines)."""
        self.workspace, self.audit, self.model = workspace, audit, model
        self.settings = SETTINGS["on"] if settings is None else settings
        self.log = log
        self.client = LanguageClient("airgap-bench-context", "0")
        self.indexed = asyncio.Event()
        self.index_message = ""
        self.audit_offset = 0

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _create(_c: LanguageClient, _p: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def _progress(_c: LanguageClient, params: types.ProgressParams) -> None:
            value = params.value if isinstance(params.value, dict) else {}
            message = value.get("message") or ""
            if value.get("kind") == "end" and "indexed" in message:
                self.index_message = message
                self.indexed.set()

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def _show(_c: LanguageClient, params: types.ShowMessageParams) -> None:
            print(f"server: {params.message}", file=sys.stderr)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def _log(_c: LanguageClient, _p: types.LogMessageParams) -> None:
            return None

        @self.client.feature("airgap/status")
        def _status(_c: LanguageClient, _p: object) -> None:
            return None

    async def start(self, index_timeout_s: float) -> None:
        if self.log is None:
            await self.client.start_io(
                sys.executable, "-m", SERVER_MODULE, "serve", cwd=SERVER_ROOT
            )
        else:  # the shell points the server's stderr at the log, then becomes the server
            await self.client.start_io(
                "/bin/sh",
                "-c",
                'exec "$0" -m "$2" serve 2>>"$1"',
                sys.executable,
                str(self.log),
                SERVER_MODULE,
                cwd=SERVER_ROOT,
            )
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(work_done_progress=True)
                ),
                workspace_folders=[
                    types.WorkspaceFolder(uri=self.workspace.as_uri(), name=self.workspace.name)
                ],
                initialization_options={
                    "auditPath": str(self.audit),
                    **({"model": self.model} if self.model else {}),
                    **self.settings,
                },
            )
        )
        self.client.initialized(types.InitializedParams())
        await asyncio.wait_for(self.indexed.wait(), index_timeout_s)

    def configure(self, condition: str) -> None:
        self.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=SETTINGS[condition])
        )

    async def complete(self, pos: corpus.Position, timeout_s: float) -> tuple[str, float, dict]:
        """The suggestion, the latency in ms, and its audit line ({} for an empty one)."""
        started = time.perf_counter()
        result = await asyncio.wait_for(
            self.client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=pos.path.as_uri()),
                    position=types.Position(line=pos.line, character=pos.character),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            ),
            timeout_s,
        )
        elapsed = (time.perf_counter() - started) * 1000
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        texts = [
            i.insert_text if isinstance(i.insert_text, str) else i.insert_text.value for i in items
        ]
        record: dict = {}
        if self.audit.exists():  # written and flushed before the reply
            with self.audit.open("rb") as fh:
                fh.seek(self.audit_offset)
                new = fh.read()
            self.audit_offset += len(new)
            docs = [json.loads(ln) for ln in new.decode("utf-8").split("\n") if ln.strip()]
            # Accept / not-accepted events share the log: the suggestion is the last record.
            shown = [d for d in docs if d.get("kind") == "inline_completion"]
            if shown:
                record = shown[-1]
        return (texts[0] if texts else ""), elapsed, record

    def open(self, pos: corpus.Position, language_id: str) -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=pos.path.as_uri(), language_id=language_id, version=1, text=pos.text
                )
            )
        )

    def close(self, pos: corpus.Position) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=pos.path.as_uri())
            )
        )

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def end(self) -> None:
        """`stop` once it has indexed (it answers requests); before, only `exit` (a server
        still indexing, or that never started, may not answer a shutdown)."""
        if self.indexed.is_set():
            await self.stop()
        else:
            self.client.exit(None)
            await self.client.stop()


async def run_language(
    project: corpus.Project, n: int, seed: int, tmp: Path, timeout_s: float, model: str = ""
) -> Row:
    row = Row(language=project.language, packages=corpus.packages(project.role))
    dest = tmp / project.language.lower()
    files = corpus.copy_project(project, dest)
    workspace = files[0].parent
    while workspace.parent != dest:
        workspace = workspace.parent
    workspace = workspace.resolve()
    files = [f.resolve() for f in files]
    row.files = len(files)
    row.cursor_files = sum(
        project.cursor(f.as_posix(), f.read_text(encoding="utf-8", errors="replace")) for f in files
    )
    todo = corpus.positions(project, files, n, seed)
    server = Server(workspace, tmp / f"audit-{project.language.lower()}.jsonl", model)
    started = time.perf_counter()
    await server.start(index_timeout_s=600)
    row.index_message = server.index_message
    print(
        f"{project.language}: {row.files} files ({server.index_message}), {len(todo)} positions",
        file=sys.stderr,
    )
    try:
        if todo:  # a warm-up: the first request waits for the model to load; not counted
            server.open(todo[0], project.lsp_id)
            server.configure("off")
            await server.complete(todo[0], timeout_s + 300)
            server.close(todo[0])
        for k, pos in enumerate(todo):
            server.open(pos, project.lsp_id)
            case: dict[str, Any] = {
                "file": pos.path.relative_to(workspace).as_posix(),
                "line": pos.line,
                "character": pos.character,
                "typed": pos.text.split("\n")[pos.line],
                "target": pos.target,
            }
            order = CONDITIONS if k % 2 else tuple(reversed(CONDITIONS))
            for condition in order:
                server.configure(condition)
                text, ms, record = await server.complete(pos, timeout_s)
                exact, sim = score(text, pos.target)
                full = (case["typed"] + pos.target).strip()
                out = Outcome(suggestion=text, exact=exact, similarity=sim, latency_ms=ms)
                if record:
                    out.prompt_tokens = record["timings"]["prompt_tokens"]
                    out.sources = len(record["context_sources"])
                    out.line_in_prompt = full in record["prompt"]
                    out.prompt_tail = record["prompt"][-300:]
                    out.prompt_format = record["model"]["prompt_format"]
                case[condition] = out
            server.close(pos)
            row.cases.append(case)
    finally:
        await server.stop()
    print(f"{project.language}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return row


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary(rows: list[Row]) -> str:
    out = [
        "| language | n | exact match off | on | lift | edit sim off | on | "
        "mean prompt tokens off | on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n = len(row.cases)
        if not n:
            continue
        em = {c: sum(case[c].exact for case in row.cases) / n for c in CONDITIONS}
        sim = {c: statistics.fmean(case[c].similarity for case in row.cases) for c in CONDITIONS}
        tok = {
            c: mean([case[c].prompt_tokens for case in row.cases if case[c].prompt_tokens])
            for c in CONDITIONS
        }
        lift = (
            f"{em['on'] / em['off']:.2f}x"
            if em["off"]
            else ("+" if em["on"] else "0") + f" ({em['on'] - em['off']:+.2f})"
        )
        out.append(
            f"| {row.language} | {n} | {em['off']:.2f} | {em['on']:.2f} | {lift} | "
            f"{sim['off']:.3f} | {sim['on']:.3f} | {fmt(tok['off'], '.0f')} | "
            f"{fmt(tok['on'], '.0f')} |"
        )
    return "\n".join(out)


def details(rows: list[Row]) -> str:
    out = [
        "| language | workspace files | cursor files | index | positions on>off / on<off "
        "(edit sim) | exact: won / lost | empty off / on | whole line in prompt off / on | "
        "mean sources on | mean latency ms off / on |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cs = row.cases
        if not cs:
            continue
        better = sum(c["on"].similarity > c["off"].similarity for c in cs)
        worse = sum(c["on"].similarity < c["off"].similarity for c in cs)
        won = sum(c["on"].exact and not c["off"].exact for c in cs)
        lost = sum(c["off"].exact and not c["on"].exact for c in cs)
        empty = {k: sum(not c[k].suggestion.strip() for c in cs) for k in CONDITIONS}
        copy = {
            k: f"{sum(bool(c[k].line_in_prompt) for c in cs)}/"
            f"{sum(c[k].line_in_prompt is not None for c in cs)}"
            for k in CONDITIONS
        }
        sources = mean([c["on"].sources for c in cs if c["on"].sources is not None])
        lat = {k: statistics.fmean(c[k].latency_ms for c in cs) for k in CONDITIONS}
        out.append(
            f"| {row.language} | {row.files} | {row.cursor_files} | {row.index_message} | "
            f"{better} / {worse} | {won} / {lost} | {empty['off']} / {empty['on']} | "
            f"{copy['off']} / {copy['on']} | {fmt(sources, '.1f')} | "
            f"{lat['off']:.0f} / {lat['on']:.0f} |"
        )
    return "\n".join(out)


def header(rows: list[Row], seed: int, wall_s: float) -> str:
    corpora = "; ".join(f"{r.language}: {', '.join(r.packages)}" for r in rows)
    return (
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: "
        f"{describe()}; load average at the end {os.getloadavg()[0]:.1f}; "
        f"seed {seed}; wall time {wall_s:.0f} s; server {SERVER_ROOT}\n"
        f"corpus: {corpora}"
    )


async def run(args: argparse.Namespace) -> list[Row]:
    wanted = {name.strip().lower() for name in args.languages.split(",") if name.strip()}
    projects = [p for p in corpus.PROJECTS if p.language.lower() in wanted]
    rows = []
    with tempfile.TemporaryDirectory(prefix="airgap-context-lift-") as tmp:
        for project in projects:
            rows.append(
                await run_language(
                    project, args.positions, args.seed, Path(tmp), args.timeout, args.model
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--positions", type=int, default=12, help="positions per language (each asked twice)"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--languages",
        default=",".join(p.language for p in corpus.PROJECTS),
        help="comma-separated, of: " + ", ".join(p.language for p in corpus.PROJECTS),
    )
    parser.add_argument("--model", default="", help="NAME or NAME@VERSION (default: the server's)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--json", type=Path, help="write every case (both suggestions) here")
    args = parser.parse_args()
    try:
        for p in corpus.PROJECTS:
            corpus.project_source(p)
    except corpus.MissingCorpus as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = asyncio.run(run(args))
    wall = time.perf_counter() - started
    print(header(rows, args.seed, wall))
    print()
    print(summary(rows))
    print()
    print(details(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "language": r.language,
                        "packages": r.packages,
                        "cases": [{k: _plain(v) for k, v in c.items()} for c in r.cases],
                    }
                    for r in rows
                ],
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0


def _plain(value: Any) -> Any:
    return asdict(value) if isinstance(value, Outcome) else value


if __name__ == "__main__":
    sys.exit(main())
