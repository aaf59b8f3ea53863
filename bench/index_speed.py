"""How fast the workspace index is built, against universal-ctags, and how long the context of one
request takes to build on a large index (`make bench`).

Trees: the largest single corpus tree of `bench/setup-corpus.sh`, then all of them together (one
index over every corpus root, several thousand files). Per tree, three rounds, interleaved:
`WorkspaceIndex.scan()` (walk, read, parse, extract definitions and imports) in this process
alone, then with one worker process per core (as the server scans), then universal-ctags on
exactly the files the index took (`ctags -L`), then `ctags -R` on the same roots (ctags' own
choice of files). Then, on the all-corpora index, `ContextBuilder.build()` for random cursor
positions (fixed seed) at the server's default budget with the default model's tokenizer counting
tokens, with no other open document and with 8 (files of the same language, as open editor tabs),
interleaved, then again at the same position after a keystroke; and `WorkspaceIndex.update(path,
text)`, which the server runs before building the context when the document changed since the
last request. Last, a workspace built to be slow: one procedure name defined in 1,500 files.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import lsp_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/corpus.py: run as a script, not as a package)
from machine import describe  # noqa: E402  (bench/machine.py)

from airgap_lsp.settings import Settings  # noqa: E402
from context.index import WorkspaceIndex, scan_workers  # noqa: E402
from context.retrieval import ContextBuilder, ContextRequest, cursor_region  # noqa: E402

ROLES = tuple(corpus.SOURCE_ROOTS)
SLOW_FILES = 1_500


def ctags_binary() -> str:
    for name in ("ctags-universal", "universal-ctags", "ctags"):
        path = shutil.which(name)
        if path:
            version = subprocess.run(
                [path, "--version"], capture_output=True, text=True, check=False
            ).stdout
            if "Universal Ctags" in version:
                return path
    raise SystemExit(f"universal-ctags is not installed: run {corpus.SETUP} (as root)")


def count_tags(path: Path) -> tuple[int, int]:
    """(tags, files with at least one tag) in a ctags tags file."""
    tags, files = 0, set()
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("!_"):
                continue
            tags += 1
            parts = line.split("\t", 2)
            if len(parts) > 1:
                files.add(parts[1])
    return tags, len(files)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_tree(name: str, roots: list[Path], rounds: int, ctags: str, tmp: Path) -> dict:
    workers = scan_workers()
    alone, parallel = "index, 1 process", f"index, {workers} worker processes"
    results: dict[str, list[float]] = {alone: [], parallel: [], "ctags -L": [], "ctags -R": []}
    counts: dict[str, tuple[int, int]] = {}
    index: WorkspaceIndex | None = None
    file_list = tmp / f"{name}.files"
    tags = tmp / f"{name}.tags"
    for _ in range(rounds):
        for kind, n in ((alone, 1), (parallel, workers)):
            index = WorkspaceIndex(roots)
            started = time.perf_counter()
            files = index.scan(workers=n)
            results[kind].append(time.perf_counter() - started)
            entries = index.files()
            counts[kind] = (sum(len(e.definitions) for e in entries), files)
        assert index is not None
        file_list.write_text("\n".join(str(e.path) for e in entries) + "\n", encoding="utf-8")

        for kind in ("ctags -L", "ctags -R"):
            where = ["-L", str(file_list)] if kind == "ctags -L" else ["-R", *map(str, roots)]
            started = time.perf_counter()
            subprocess.run(
                [ctags, "--fields=+n", "-f", str(tags), *where],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results[kind].append(time.perf_counter() - started)
            counts[kind] = count_tags(tags)
    assert index is not None
    return {"name": name, "roots": roots, "seconds": results, "counts": counts, "index": index}


def tokenizer_counter() -> tuple[Callable[[str], int], str]:
    from inference.offline import set_offline_env

    set_offline_env()
    from transformers import AutoTokenizer

    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.store import ModelStore

    stored = ModelStore(model_store_root()).verify(DEFAULT_MODEL)
    tok = AutoTokenizer.from_pretrained(str(stored.path), local_files_only=True)

    def count(text: str) -> int:  # as the engine counts (inference/engine.py)
        return len(tok(text, add_special_tokens=False).input_ids)

    return count, DEFAULT_MODEL


def time_context(
    index: WorkspaceIndex, n: int, seed: int, count: Callable[[str], int], budget: int
) -> dict:
    rng = random.Random(seed)
    entries = [e for e in index.files() if len(e.lines) > 1]
    by_language: dict[str, list] = {}
    for e in entries:
        by_language.setdefault(e.language, []).append(e)
    builder = ContextBuilder(index)
    tokenizing = {"ms": 0.0, "calls": 0}
    started = time.perf_counter()
    builder.similar.prepare()  # as the server does once the scan ends
    prepare_ms = (time.perf_counter() - started) * 1000

    def counted(text: str) -> int:
        started = time.perf_counter()
        try:
            return count(text)
        finally:
            tokenizing["ms"] += (time.perf_counter() - started) * 1000
            tokenizing["calls"] += 1

    rows: dict[str, dict[str, list[float]]] = {}

    def add(step: str, ms: float, **extra: float) -> None:
        row = rows.setdefault(step, {"ms": []})
        row["ms"].append(ms)
        for key, value in extra.items():
            row.setdefault(key, []).append(value)

    def build(step: str, req: ContextRequest) -> None:
        tokenizing.update(ms=0.0, calls=0)
        started = time.perf_counter()
        got = builder.build(req, counted)
        add(
            step,
            (time.perf_counter() - started) * 1000,
            snippets=len(got),
            token_calls=tokenizing["calls"],
            token_ms=tokenizing["ms"],
        )

    for _ in range(n):
        entry = rng.choice(entries)
        line = rng.randrange(len(entry.lines))
        text = "\n".join(entry.lines)
        pool = by_language[entry.language]
        peers = [e for e in rng.sample(pool, min(9, len(pool))) if e is not entry][:8]
        recent = tuple((e.path, "\n".join(e.lines)) for e in peers)
        for cond, open_docs in (("no open documents", ()), ("8 open documents", recent)):
            req = ContextRequest(
                path=entry.path, text=text, cursor_line=line, budget_tokens=budget, recent=open_docs
            )
            build(f"ContextBuilder.build, {cond}", req)
        # The parts of build() (8 open documents), each candidate generator run to its end.
        region = cursor_region(text, line)  # as build() chooses for
        for step, produce in (
            ("part: _definitions", lambda: builder._definitions(req, region)),  # noqa: B023
            ("part: _imported", lambda: builder._imported(req)),  # noqa: B023
            ("part: _similar", lambda: builder._similar(req, region)),  # noqa: B023
        ):
            started = time.perf_counter()
            found = list(produce())
            add(step, (time.perf_counter() - started) * 1000, candidates=len(found))
        # A keystroke: the line gains a character, the server puts the text in the index, and
        # the context is built again at the same place.
        lines = text.split("\n")
        lines[line] += "x"
        typed = "\n".join(lines)
        started = time.perf_counter()
        index.update(entry.path, typed)  # what refresh_index does for a changed document
        add("index.update(path, text)", (time.perf_counter() - started) * 1000)
        build(
            "ContextBuilder.build, the same place after a keystroke",
            replace(req, text=typed),
        )
        index.update(entry.path)  # back to the file on disk
    return {"rows": rows, "n": n, "prepare_ms": prepare_ms}


def time_slow_workspace(tmp: Path, count: Callable[[str], int], budget: int) -> dict:
    """One procedure name defined in 1,500 files, and a file that calls it: the context of a
    line near the call, cold (the first request there) and again."""
    root = tmp / "slow"
    (root / "src").mkdir(parents=True)
    for n in range(SLOW_FILES):
        (root / "src" / f"unit_{n:04}.ads").write_text(
            f"package Unit_{n:04} is\n   procedure Reset (Count : in out Natural);\n"
            f"   --  unit {n}\nend Unit_{n:04};\n",
            encoding="utf-8",
        )
    main = root / "src" / "main.adb"
    main.write_text(
        "with Unit_0001;\nprocedure Main is\n   N : Natural := 0;\nbegin\n   Reset (N);\n"
        "   N := N + 1;\n   Reset (N);\n\nend Main;\n",
        encoding="utf-8",
    )
    index = WorkspaceIndex([root])
    index.scan(workers=scan_workers())
    builder = ContextBuilder(index)
    builder.similar.prepare()
    text = main.read_text(encoding="utf-8")
    times: dict[str, list[float]] = {"cold": [], "again": []}
    for line in range(2, 9):
        req = ContextRequest(path=main, text=text, cursor_line=line, budget_tokens=budget)
        for kind in ("cold", "again"):
            started = time.perf_counter()
            builder.build(req, count)
            times[kind].append((time.perf_counter() - started) * 1000)
    return times


def report(
    trees: list[dict], ctx: dict, slow: dict, model: str, wall_s: float, seed: int, budget: int
) -> str:
    out = [
        f"date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: "
        f"{describe()}; load average at the end {os.getloadavg()[0]:.1f}; "
        f"wall time {wall_s:.0f} s; code "
        f"{Path(lsp_server.__file__).resolve().parents[1]}",
        "",
        "| tree | tool | files | definitions / tags | seconds (median) | all rounds | files/s "
        "| time / ctags -L |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tree in trees:
        base = statistics.median(tree["seconds"]["ctags -L"])
        for kind, secs in tree["seconds"].items():
            defs, files = tree["counts"][kind]
            med = statistics.median(secs)
            note = " with a tag" if kind.startswith("ctags") else ""
            out.append(
                f"| {tree['name']} | {kind} | {files}{note} | {defs} | {med:.2f} | "
                f"{', '.join(f'{s:.2f}' for s in secs)} | {files / med:.0f} | {med / base:.1f} |"
            )
    out += [
        "",
        f"Context per request on the all-corpora index ({len(trees[-1]['index'])} files), "
        f"{ctx['n']} positions, seed {seed}, budget {budget} tokens (the default), tokens "
        f"counted with {model}'s tokenizer; the similar-code rankers, built once after the "
        f"scan, took {ctx['prepare_ms'] / 1000:.1f} s:",
        "",
        "| step | median ms | p95 ms | max ms | mean snippets / candidates | "
        "mean count_tokens calls | mean ms in count_tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, row in ctx["rows"].items():
        ms = row["ms"]
        many = row.get("snippets") or row.get("candidates")
        calls, tok = row.get("token_calls"), row.get("token_ms")
        cells = [
            step,
            f"{statistics.median(ms):.1f}",
            f"{pct(ms, 0.95):.1f}",
            f"{max(ms):.1f}",
            f"{statistics.fmean(many):.1f}" if many else "-",
            f"{statistics.fmean(calls):.0f}" if calls is not None else "-",
            f"{statistics.fmean(tok):.1f}" if tok is not None else "-",
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        f"A workspace built to be slow: `procedure Reset` declared in {SLOW_FILES:,} files and "
        f"called from `main.adb`; the context of each of {len(slow['cold'])} lines near the "
        "calls:",
        "",
        "| request | median ms | max ms |",
        "|---|---|---|",
    ]
    for kind, ms in slow.items():
        out.append(f"| {kind} | {statistics.median(ms):.1f} | {max(ms):.1f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--positions", type=int, default=200, help="context builds to time")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    started = time.perf_counter()
    ctags = ctags_binary()
    try:
        roots = {role: corpus.source_root(role) for role in ROLES}
    except corpus.MissingCorpus as exc:
        print(exc, file=sys.stderr)
        return 2
    sizes = {role: sum(1 for _ in WorkspaceIndex([root]).walk()) for role, root in roots.items()}
    biggest = max(sizes, key=lambda r: sizes[r])
    print(
        "corpus: "
        + "; ".join(f"{r} ({', '.join(corpus.packages(r))}): {sizes[r]} files" for r in ROLES),
        file=sys.stderr,
    )
    count, model = tokenizer_counter()
    with tempfile.TemporaryDirectory(prefix="airgap-index-speed-") as tmp:
        trees = [
            time_tree(f"{biggest} (largest)", [roots[biggest]], args.rounds, ctags, Path(tmp)),
            time_tree("all corpora", list(roots.values()), args.rounds, ctags, Path(tmp)),
        ]
        budget = Settings().context_max_tokens
        ctx = time_context(trees[-1]["index"], args.positions, args.seed, count, budget)
        slow = time_slow_workspace(Path(tmp), count, budget)
    print(
        "corpus: "
        + "; ".join(f"{r} ({', '.join(corpus.packages(r))}): {sizes[r]} files" for r in ROLES)
    )
    print(report(trees, ctx, slow, model, time.perf_counter() - started, args.seed, budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
