"""Cold requests with the C heap keeping freed memory for reuse, against handing it back to the
kernel (glibc's default), side by side (`make bench`; inference/heap.py says why).

Prompts: the first 6,000 characters of real files of the Debian corpus (`bench/setup-corpus.sh`):
Ada, VHDL, Python and C, several hundred to two thousand tokens each, every one a cold request
(no common start with the one before, so each is read whole). Each round runs the default model
in two fresh processes, one after the other: the server's engine as it is ("kept"), and the same
engine with `inference.heap.keep_freed_memory` made a no-op ("handed back"). Each process warms
the engine up, then asks every prompt once for up to 16 new tokens on one line. Reported per
setting, over all rounds: the request's time and its prompt reading (p50, mean), the minor page
faults per request (median), the process's resident memory after the last request, and whether
the texts were the same in both settings (they must be: only where buffers live changes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/ scripts import each other as modules)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (("ada-runtime", ".adb"), ("ghdl", ".vhdl"), ("python", ".py"), ("jool", ".c"))
PROMPT_CHARS = 6_000
SETTINGS = ("handed back", "kept")


def prompts(per_language: int, seed: int) -> list[str]:
    """The first PROMPT_CHARS characters of `per_language` files of each source, drawn with
    `seed` from those at least that long."""
    rng = random.Random(seed)
    out = []
    for role, suffix in SOURCES:
        root = corpus.source_root(role)
        files = sorted(p for p in root.rglob(f"*{suffix}") if p.stat().st_size > PROMPT_CHARS)
        for path in rng.sample(files, min(per_language, len(files))):
            out.append(path.read_text(encoding="utf-8", errors="replace")[:PROMPT_CHARS])
    return out


def child(setting: str, prompt_file: Path) -> None:
    """One process's run: JSON on stdout."""
    sys.path.insert(0, str(ROOT))
    import inference.engine
    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.engine import GenerationRequest, LocalEngine
    from inference.stops import StopRule
    from inference.store import ModelStore

    if setting == "handed back":
        inference.engine.keep_freed_memory = lambda: ""  # glibc's default behaviour
    texts, ms, prefill, faults = [], [], [], []
    with ModelStore(model_store_root()).held(DEFAULT_MODEL) as stored:
        engine = LocalEngine(stored, device="cpu", dtype="auto")
        engine.warm_up()
        for prompt in json.loads(prompt_file.read_text(encoding="utf-8")):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            gen = engine.generate(
                GenerationRequest(prompt=prompt, max_new_tokens=16, stop=StopRule(multiline=False))
            )
            ms.append((time.perf_counter() - started) * 1000)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            prefill.append(gen.prefill_ms)
            texts.append(gen.text)
    status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
    rss = int(status.split("VmRSS:")[1].split()[0]) // 1024 if "VmRSS:" in status else 0
    print(
        json.dumps(
            {
                "ms": ms,
                "prefill_ms": prefill,
                "faults": faults,
                "texts": texts,
                "rss_mb": rss,
                "dtype": engine.info.dtype,
            }
        )
    )


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
    prompt_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"airgap-heap-{os.getpid()}.json"
    prompt_file.write_text(json.dumps(texts), encoding="utf-8")
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    try:
        for r in range(args.rounds):
            for setting in SETTINGS:
                print(f"heap: round {r + 1} of {args.rounds}, {setting}", file=sys.stderr)
                done = subprocess.run(
                    [sys.executable, __file__, "--child", setting, "--prompts", str(prompt_file)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    failed = done.stderr[-3000:]
                    print(f"heap: the {setting} run failed:\n{failed}", file=sys.stderr)
                    return 1
                runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        prompt_file.unlink(missing_ok=True)
    report(runs, args, len(texts), (load_start, os.getloadavg()[0]))
    same = all(run["texts"] == runs[SETTINGS[0]][0]["texts"] for s in SETTINGS for run in runs[s])
    if not same:
        print("heap: the texts differ between settings or rounds: that is a fault", file=sys.stderr)
        return 1
    return 0


def report(runs: dict[str, list[dict]], args: argparse.Namespace, n: int, load: tuple) -> None:
    from model_size import cpu_flags

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"`bench/heap.py --per-language {args.per_language} --rounds {args.rounds}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, "
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu_flags()}), "
        f"{runs[SETTINGS[0]][0]['dtype']}; {n} prompts a process, {args.rounds} processes a "
        f"setting; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.\n"
    )
    print(
        "| freed memory | requests | p50 ms | mean ms | prompt reading p50 ms | page faults "
        "per request, median | resident MB after the last request |"
    )
    print("|---|---|---|---|---|---|---|")
    p50 = {}
    for s in SETTINGS:
        ms = [x for run in runs[s] for x in run["ms"]]
        pre = [x for run in runs[s] for x in run["prefill_ms"]]
        faults = [x for run in runs[s] for x in run["faults"]]
        rss = "/".join(str(run["rss_mb"]) for run in runs[s])
        p50[s] = statistics.median(ms)
        print(
            f"| {s} | {len(ms)} | {p50[s]:,.0f} | {statistics.fmean(ms):,.0f} | "
            f"{statistics.median(pre):,.0f} | {statistics.median(faults):,.0f} | {rss} |"
        )
    print(f"\nkept ÷ handed back, p50: {p50['kept'] / p50['handed back']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
