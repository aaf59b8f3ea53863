"""Decoding speed by torch thread count, on an idle machine and under load (`make bench`).

A developer's machine is seldom idle: a build or a test run competes with the model for the cores.
torch's parallel regions wait for their slowest thread, so one thread taken off its core by
another process can hold back every step. This loads the default model once and, for each load
(0, 1, ... busy processes, each spinning on one core, as a compiler does) and each thread count,
times the same generations: prompt reading (ms) and decoding speed (tokens/s), interleaved so that
each thread count sees the same machine. "auto" is the engine's own choice (one thread fewer for
each core other processes keep busy). The ratio is against all cores' threads under the same load.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import describe  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[1]
PROMPT_FILE = ROOT / "examples" / "workspace" / "tools" / "telemetry_check.py"


def spin(stop: Any) -> None:
    while not stop.is_set():
        pass


def measure(engine: Any, prompt: str, threads: int, new_tokens: int) -> tuple[float, float, int]:
    """Prefill ms, decoding tokens/s and threads used of one generation (0 threads: auto)."""
    from inference.engine import GenerationRequest
    from inference.stops import StopRule

    gen = engine.generate(
        GenerationRequest(
            prompt=prompt,
            max_new_tokens=new_tokens,
            stop=StopRule(multiline=True, prose=True),
            lookahead=0,
            threads=threads,
        )
    )
    return gen.prefill_ms, gen.tokens_per_second, gen.threads


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="generations per cell")
    p.add_argument("--new-tokens", type=int, default=48)
    args = p.parse_args()

    import torch

    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.engine import LocalEngine
    from inference.store import ModelStore

    with ModelStore(model_store_root()).held(DEFAULT_MODEL) as stored:
        # A fresh prompt each time: the reuse of the last prompt's key/values is not measured.
        engine = LocalEngine(stored, device="cpu", dtype="float32", reuse_cache=False)
    prompt = PROMPT_FILE.read_text(encoding="utf-8")
    cores = torch.get_num_threads()  # torch's own count, before a generation set it: per core
    engine.warm_up()
    counts = [*sorted({1, max(1, cores - 1), cores}), 0]
    loads = sorted({0, 1, cores})
    rows = []
    for load in loads:
        stop = multiprocessing.Event()
        hogs = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(load)]
        for h in hogs:
            h.start()
        try:
            cells: dict[int, list[tuple[float, float, int]]] = {n: [] for n in counts}
            measure(engine, prompt, 0, 4)  # a first generation under this load, not measured
            for _ in range(args.rounds):
                for n in counts:
                    cells[n].append(measure(engine, prompt, n, args.new_tokens))
        finally:
            stop.set()
            for h in hogs:
                h.join()
        base = statistics.median(r for _, r, _ in cells[cores])
        for n in counts:
            prefill = statistics.median(ms for ms, _, _ in cells[n])
            rate = statistics.median(r for _, r, _ in cells[n])
            used = sorted({t for _, _, t in cells[n]})
            label = f"auto: {'/'.join(map(str, used))}" if n == 0 else str(n)
            rows.append((load, label, prefill, rate, rate / base if base else 0.0))
        print(f"load {load} done", file=sys.stderr)

    print(
        f"date: {datetime.now(UTC).date()}; machine: {describe()}, "
        f"torch's threads {cores}; {stored.ref}, fp32, "
        f"{args.new_tokens} new tokens, prompt {engine.count_tokens(prompt)} tokens, "
        f"median of {args.rounds}"
    )
    print()
    print(
        "| busy processes | torch threads | prompt reading, ms | decoding, tokens/s "
        f"| decoding against {cores} threads |"
    )
    print("|---|---|---|---|---|")
    for load, n, prefill, rate, ratio in rows:
        print(f"| {load} | {n} | {prefill:.0f} | {rate:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
