"""Does the server choose the same context, prompt and answer each time? A cheap check beside the
quality benchmark (alone: `.venv/bin/python bench/same_context.py --project vss`).

The quality benchmark's positions of one project (bench/quality_corpus.py: the same sampler, seed
and languages, so the same positions as `bench/quality.py` asks there), asked of a fresh real
server (`python -m airgap_lsp serve` over stdio, default settings: cross-file context on) in each
of --rounds rounds, as quality.py asks them: the model loads at a request at the first position's
file's start, then each position is a didOpen of the cut document, one inlineCompletion, and a
didClose. For each position it compares the rounds' audit lines: the context sources (path,
lines, sha256), the prompt, and the answer (a position with no suggestion has no audit line: only
its empty answer is compared, and the report counts such positions). Exits 1 when any differ, 2
when the run could not be made (no corpus, a request that failed).

Two checkouts: --json writes every round's answers; --against FILE compares each round of this
run with the first round of another run's --json (e.g. the code before a change, run from its
own worktree with PYTHONPATH pointing at it, and --corpus, since the default corpus folder is
found beside the checkout), position by position. A change that should not touch the context
(the index's error paths, the order of work) is shown not to in minutes, where the whole quality
benchmark takes half an hour or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pygls.exceptions import JsonRpcException
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import context_lift  # noqa: E402  (bench/ scripts import each other as modules)
import corpus  # noqa: E402
import quality  # noqa: E402
import quality_corpus as qc  # noqa: E402

from airgap_lsp.errors import AirgapError  # noqa: E402
from airgap_lsp.paths import DEFAULT_MODEL, model_store_root  # noqa: E402
from inference.store import ModelStore  # noqa: E402

FIELDS = ("context", "prompt", "answer")


async def one_round(
    todo: list[qc.Position], model: str, folder: Path, n: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    project = todo[0].project
    log = folder / f"server-{n}.log"
    srv = context_lift.Server(project.root, folder / f"audit-{n}.jsonl", model, {}, log)
    try:
        try:
            await srv.start(args.index_timeout)
        except TimeoutError as exc:
            raise Failed(
                f"the server did not finish indexing in {args.index_timeout:.0f} s"
                + quality.tail({"a": log})
            ) from exc
        first = corpus.Position(
            path=todo[0].cut.path, line=0, character=0, text=todo[0].cut.text, target=""
        )
        await ask(srv, first, todo[0], args.timeout + 600, log)  # the model loads: not compared
        out = []
        for pos in tqdm(todo, desc=f"round {n + 1}", unit="position", file=sys.stderr):
            text, record = await ask(srv, pos.cut, pos, args.timeout, log)
            out.append(
                {
                    "file": pos.relative,
                    "line": pos.cut.line,
                    "context": record.get("context_sources"),
                    "prompt": record.get("prompt"),
                    "answer": text,
                }
            )
        return out
    finally:
        await srv.end()


async def ask(
    srv: context_lift.Server, cut: corpus.Position, pos: qc.Position, timeout: float, log: Path
) -> tuple[str, dict[str, Any]]:
    """didOpen, one inlineCompletion, didClose: the answer and its audit line ({}: none)."""
    srv.open(cut, qc.LSP_ID[pos.language])
    try:
        text, _ms, record = await srv.complete(cut, timeout)
    except (TimeoutError, JsonRpcException) as exc:
        raise Failed(
            f"{pos.relative}:{cut.line + 1}: the request failed ({exc or type(exc).__name__})"
            + quality.tail({"a": log})
        ) from exc
    finally:
        srv.close(cut)
    return text, record


class Failed(Exception):
    """A round could not be made: the report says why."""


def read_against(path: Path) -> list[dict[str, Any]]:
    """The first round of another run's --json; exits (2) saying so when it is not one."""
    try:
        first = json.loads(path.read_text(encoding="utf-8"))[0]
        if all(isinstance(a, dict) and {"file", "line", *FIELDS} <= a.keys() for a in first):
            return list(first)
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        pass
    print(f"same_context: --against {path}: not a --json written by this script", file=sys.stderr)
    raise SystemExit(2)


def differences(rounds: list[list[dict[str, Any]]]) -> list[str]:
    """One line per position where the rounds differ, naming what differs."""
    lines = []
    for answers in zip(*rounds, strict=True):
        first = answers[0]
        differ = [f for f in FIELDS if any(a[f] != first[f] for a in answers[1:])]
        if differ:
            lines.append(f"{first['file']}:{first['line'] + 1}: {', '.join(differ)} differ")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True, help="a project folder's name")
    parser.add_argument("--rounds", type=int, default=2, help="fresh servers, one after another")
    parser.add_argument("--languages", help="as quality.py takes them (default: all)")
    parser.add_argument("--per-language", type=int, default=100, help="as quality.py was run")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--corpus", type=Path, default=quality.DEFAULT_CORPUS)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME@VERSION in the store")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per request")
    parser.add_argument("--index-timeout", type=float, default=900, help="seconds per index")
    parser.add_argument("--json", type=Path, help="write every round's answers here")
    parser.add_argument("--against", type=Path, help="another run's --json, to compare with")
    args = parser.parse_args()
    if args.rounds < 1 or (args.rounds < 2 and args.against is None and args.json is None):
        parser.error("--rounds must be at least 2, or 1 with --against or --json")
    other = read_against(args.against) if args.against is not None else None
    try:
        model = "@".join(ModelStore(model_store_root()).resolve(args.model))
        positions, _, _ = quality.drawn(args, [])
    except (qc.MissingCorpus, AirgapError) as exc:
        print(f"same_context: {exc}", file=sys.stderr)
        return 2
    todo = [p for p in positions if p.project.name == args.project]
    if not todo:
        names = sorted({p.project.name for p in positions})
        print(
            f"same_context: no position in {args.project!r}; projects with positions: "
            + ", ".join(names),
            file=sys.stderr,
        )
        return 2
    if other is not None and [(a["file"], a["line"]) for a in other] != [
        (p.relative, p.cut.line) for p in todo
    ]:
        print(
            f"same_context: --against {args.against} holds other positions (another project, "
            "seed or --per-language?)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="airgap-same-context-") as tmp:

        async def run() -> list[list[dict[str, Any]]]:
            return [await one_round(todo, model, Path(tmp), n, args) for n in range(args.rounds)]

        try:
            rounds = asyncio.run(run())
        except Failed as exc:
            print(f"same_context: {exc}", file=sys.stderr)
            return 2
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1), encoding="utf-8")
    if other is not None:
        rounds = [other, *rounds]
    if len(rounds) < 2:  # one round, kept for a later --against
        print(f"{args.project}: {len(todo)} positions, 1 round, written to {args.json}")
        return 0
    found = differences(rounds)
    unaudited = sum(all(r[i]["prompt"] is None for r in rounds) for i in range(len(todo)))
    print(
        f"{args.project}: {len(todo)} position{'s' * (len(todo) != 1)}, {len(rounds)} rounds"
        + (f" (the first from {args.against})" if other is not None else "")
        + f", {time.perf_counter() - started:.0f} s: "
        + (f"{len(found)} differ" if found else "the same context, prompt and answer at each")
        + (
            f" ({unaudited} with no suggestion in any round: their answers only)"
            if unaudited
            else ""
        )
    )
    for line in found:
        print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
