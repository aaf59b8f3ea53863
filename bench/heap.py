"""Cold requests with the C heap keeping freed memory for reuse, against handing it back to the
kernel (glibc's default), side by side (`make bench`; inference/heap.py says why).

Prompts: the first 6,000 characters of real files of the Debian corpus (`bench/setup-corpus.sh`):
Ada, VHDL, Python and C, several hundred to two thousand tokens each, each headed by its file's
name as the repository format heads a file, every one a cold request (no common start with the
one before, so each is read whole; a reused start fails the run).
Each round runs the default model in two fresh processes, one after the other (the order
alternates from round to round): the server's engine as it is ("kept"), and the same engine with
`inference.heap.keep_freed_memory` made a no-op ("handed back"). Each process loads the engine
and asks it on one worker thread, as the server's model worker does; it warms the engine up,
then asks every prompt once for up to 16 new tokens on one line, with one thread per core (the
server's own count follows the load, and another count rounds otherwise). Reported per setting,
over all rounds: the request's time and its prompt reading (p50, mean), the minor page faults
per request (median), the process's resident memory after the last request and at its peak
during the requests; and the ratio of the p50s. The run fails, before its table, where the texts
differ between the settings (only where buffers live changes, not what is computed), where a
request reused the one before's key/values, or where the kept setting did nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/ scripts import each other as modules)
from machine import describe  # noqa: E402  (bench/machine.py)

from inference.prompt_format import FORMATS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (("ada-runtime", ".adb"), ("ghdl", ".vhdl"), ("python", ".py"), ("jool", ".c"))
PROMPT_CHARS = 6_000
SETTINGS = ("handed back", "kept")
CHILD_TIMEOUT_S = 1_800
FILE_SEP = FORMATS["prefix-only"].file_sep  # the default model's repository format


def prompts(per_language: int, seed: int) -> list[str]:
    """The first PROMPT_CHARS characters of `per_language` files of each source, drawn with
    `seed` from those at least that long."""
    rng = random.Random(seed)
    out = []
    for role, suffix in SOURCES:
        root = corpus.source_root(role)
        files = sorted(p for p in root.rglob(f"*{suffix}") if p.stat().st_size > PROMPT_CHARS)
        for path in rng.sample(files, min(per_language, len(files))):
            # The file's name first, as the repository format heads a file: files that open
            # with the same licence text would otherwise share their prompts' start.
            text = path.read_text(encoding="utf-8", errors="replace")
            out.append(f"{FILE_SEP}{path.relative_to(root)}\n{text[:PROMPT_CHARS]}")
    return out


def child(setting: str, prompt_file: Path) -> None:
    """One process's run: JSON on stdout. The engine is loaded and asked on one worker thread,
    as the server's model worker does (lsp_server/model_host.py): a thread other than the main
    one allocates from an arena of its own, which glibc trims otherwise than the main heap."""
    sys.path.insert(0, str(ROOT))
    import inference.engine
    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.engine import GenerationRequest, LocalEngine
    from inference.stops import StopRule
    from inference.store import ModelStore

    if setting == "handed back":
        inference.engine.keep_freed_memory = lambda: ""  # glibc's default behaviour
    from inference.heap import kept

    out: dict[str, list] = {k: [] for k in ("ms", "prefill_ms", "faults", "reused", "texts")}
    info: list[str] = []

    def run() -> None:
        with ModelStore(model_store_root()).held(DEFAULT_MODEL) as stored:
            # As the server has it: the last prompt's key/values kept (the prompts share no
            # start, so none is reused; a run where one was fails).
            engine = LocalEngine(stored, device="cpu", dtype="auto")
        engine.warm_up()
        info.append(engine.info.dtype)
        # The peak from here on: the requests', not the load's (proc(5), clear_refs).
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
        for prompt in json.loads(prompt_file.read_text(encoding="utf-8")):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            gen = engine.generate(
                GenerationRequest(
                    prompt=prompt,
                    max_new_tokens=16,
                    stop=StopRule(multiline=False),
                    # One count for every process: the server's own choice follows the load,
                    # and another count rounds otherwise (the texts are compared).
                    threads=os.cpu_count() or 1,
                )
            )
            out["ms"].append((time.perf_counter() - started) * 1000)
            out["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            out["prefill_ms"].append(gen.prefill_ms)
            out["reused"].append(gen.reused_tokens)
            out["texts"].append(gen.text)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as worker:
        worker.submit(run).result()
    status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
    memory: dict[str, int | str] = {
        f"{key}_mb": int(status.split(f"{key}:")[1].split()[0]) // 1024
        if f"{key}:" in status
        else 0
        for key in ("VmRSS", "VmHWM")
    }
    memory["said"] = kept() or ""
    print(json.dumps({**out, **memory, "dtype": info[0]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=6, help="prompts per language")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.prompts)
        return 0
    try:
        texts = prompts(args.per_language, args.seed)
    except corpus.MissingCorpus as exc:
        print(f"heap: {exc}", file=sys.stderr)
        return 2
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="airgap-heap-") as tmp:
        prompt_file = Path(tmp) / "prompts.json"
        prompt_file.write_text(json.dumps(texts), encoding="utf-8")
        for r in range(args.rounds):
            # The order alternates from one round to the next: neither setting always goes first.
            for setting in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
                print(f"heap: round {r + 1} of {args.rounds}, {setting}", file=sys.stderr)
                try:
                    done = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            setting,
                            "--prompts",
                            str(prompt_file),
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                        timeout=CHILD_TIMEOUT_S,
                    )
                except subprocess.TimeoutExpired:
                    print(f"heap: the {setting} run took over {CHILD_TIMEOUT_S} s", file=sys.stderr)
                    return 1
                said = done.stdout.strip().splitlines()
                if done.returncode != 0 or not said:
                    failed = done.stderr[-3000:]
                    print(f"heap: the {setting} run failed:\n{failed}", file=sys.stderr)
                    return 1
                runs[setting].append(json.loads(said[-1]))
    same = all(run["texts"] == runs[SETTINGS[0]][0]["texts"] for s in SETTINGS for run in runs[s])
    problems = []
    if not same:
        problems.append("the texts differ between settings or rounds: that is a fault")
    if any(x for s in SETTINGS for run in runs[s] for x in run["reused"]):
        problems.append("a request reused the one before's key/values: not cold")
    if not all(run["said"] for run in runs["kept"]):
        problems.append("the engine kept nothing (not glibc, or the environment tunes malloc)")
    if problems:
        print("heap: " + "; ".join(problems) + " (no report)", file=sys.stderr)
        return 1
    report(runs, args, len(texts), (load_start, os.getloadavg()[0]))
    return 0


def report(runs: dict[str, list[dict]], args: argparse.Namespace, n: int, load: tuple) -> None:
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"`bench/heap.py --per-language {args.per_language} --rounds {args.rounds}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, "
        f"{describe()}, "
        f"{runs[SETTINGS[0]][0]['dtype']}; {n} prompts a process, {args.rounds} processes a "
        f"setting; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.\n"
    )
    print(
        "| freed memory | requests | p50 / mean ms | prompt reading, p50 / mean ms | page faults "
        "per request, median | resident MB after the last request | peak resident MB, requests |"
    )
    print("|---|---|---|---|---|---|---|")
    p50: dict[str, tuple[float, float]] = {}
    for s in SETTINGS:
        ms = [x for run in runs[s] for x in run["ms"]]
        pre = [x for run in runs[s] for x in run["prefill_ms"]]
        faults = [x for run in runs[s] for x in run["faults"]]
        rss = " / ".join(str(run["VmRSS_mb"]) for run in runs[s])
        hwm = " / ".join(str(run["VmHWM_mb"]) for run in runs[s])
        p50[s] = (statistics.median(ms), statistics.median(pre))
        print(
            f"| {s} | {len(ms)} | {p50[s][0]:,.0f} / {statistics.fmean(ms):,.0f} | "
            f"{p50[s][1]:,.0f} / {statistics.fmean(pre):,.0f} | "
            f"{statistics.median(faults):,.0f} | {rss} | {hwm} |"
        )
    kept, back = p50["kept"], p50["handed back"]
    print(
        f"\nkept ÷ handed back, p50: the request {kept[0] / back[0]:.2f}, "
        f"its prompt reading {kept[1] / back[1]:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
