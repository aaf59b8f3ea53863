"""Reading a prompt after a kept start, against reading it whole (`make bench`).

The engine keeps the last prompt's key/values and reads only what a new prompt adds to their
common start. The rest of a prompt read after a kept start carries a causal mask, and its
attention costs its rows times every key; a prompt read whole takes the causal kernel, which
skips the masked half. So a short kept start can cost more than it saves: this measures where
it starts to pay, the trade-off behind `inference.engine.MIN_REUSE_SHARE` (the engine reads a
prompt whole below that share; here the kept start is used at every length, the rule set aside).

For each kept length n: a prompt of real Ada (the Debian corpus of bench/setup-corpus.sh) is read
to be kept, then a prompt of --prompt tokens that starts with its first n tokens and goes on with
other code; then an unrelated prompt, and the second prompt again, read whole. Both reads of the
second prompt are timed (the engine's own prefill time), rounds interleaved over the lengths, and
the medians reported with their ratio; which of the two comes first alternates by round. One
token is generated, greedy, prompt lookup off, on a fixed number of threads (the engine would
otherwise take one fewer while another program runs, and a pair read on 1 and 2 threads measures
that, not the kept start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (bench/corpus.py: run as a script, not as a package)
from machine import describe  # noqa: E402  (bench/machine.py)
from quality import commit  # noqa: E402  (bench/quality.py)

import inference.engine as engine_module  # noqa: E402
from airgap_lsp import egress  # noqa: E402
from airgap_lsp.paths import DEFAULT_MODEL, model_store_root  # noqa: E402
from inference.engine import GenerationRequest, LocalEngine  # noqa: E402
from inference.offline import set_offline_env  # noqa: E402
from inference.stops import StopRule  # noqa: E402
from inference.store import ModelStore  # noqa: E402

set_offline_env()
from transformers import AutoTokenizer  # noqa: E402

KEPT = "16,64,150,300,450,600,900,1200"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="NAME or NAME@VERSION in the store")
    p.add_argument("--prompt", type=int, default=1500, help="tokens of the prompt read")
    p.add_argument("--kept", default=KEPT, help="kept start lengths, comma-separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    p.add_argument("--threads", type=int, default=0, help="0: every core this process may use")
    p.add_argument("--write", type=Path, help="append the report (markdown) to this file")
    args = p.parse_args()
    kept_lengths = [int(k) for k in args.kept.split(",")]
    if any(not 0 < k < args.prompt for k in kept_lengths):
        p.error(f"each kept length must be between 0 and --prompt ({args.prompt})")
    egress.install()
    try:
        root = corpus.source_root("ada-runtime")
    except corpus.MissingCorpus as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.perf_counter()
    # Keep the start at every length, however short: that is the question.
    engine_module.MIN_REUSE_SHARE = 0.0
    engine_module.MIN_REUSE = 1
    threads = args.threads or len(os.sched_getaffinity(0))
    stored = ModelStore(model_store_root()).verify(args.model)
    engine = LocalEngine(stored, dtype=args.dtype)
    # The model's own tokenizer, to cut prompts at token boundaries as the engine counts them.
    tokenizer = AutoTokenizer.from_pretrained(str(stored.path), local_files_only=True)
    bodies = sorted(root.glob("*.adb"))
    need = args.prompt * (args.rounds + 2)

    def ids_of(files: list[Path]) -> list[int]:
        out: list[int] = []
        for f in files:
            out += tokenizer(f.read_text(errors="replace"), add_special_tokens=False).input_ids
            if len(out) >= need:
                return out
        raise SystemExit(f"not enough code under {root} for {need} tokens")

    first = ids_of(bodies[: len(bodies) // 2])
    other = ids_of(bodies[len(bodies) // 2 :])

    def read(ids: list[int]) -> tuple[float, int, int, str]:
        gen = engine.generate(
            GenerationRequest(
                prompt=tokenizer.decode(ids),
                max_new_tokens=1,
                stop=StopRule(multiline=True),
                lookahead=0,
                threads=threads,
            )
        )
        if gen.threads != threads:
            raise SystemExit(f"a read ran on {gen.threads} threads, not {threads}")
        return gen.prefill_ms, gen.reused_tokens, gen.prompt_tokens, gen.text

    def kept(n: int, at: int, second: list[int]) -> tuple[float, int, int, str]:
        read(first[at : at + args.prompt])
        got = read(second)
        # Decoded and tokenized again, the two texts may merge a token where they join.
        if not n - 3 <= got[1] <= n:
            raise SystemExit(f"a kept start of {n} tokens kept {got[1]}")
        return got

    def whole(second: list[int]) -> tuple[float, int, int, str]:
        # Another prompt between (the same one twice keeps it whole), and no start kept.
        engine_module.MIN_REUSE = sys.maxsize
        try:
            read(other[-args.prompt :])
            got = read(second)
        finally:
            engine_module.MIN_REUSE = 1
        if got[1]:
            raise SystemExit(f"the prompt read whole reused {got[1]} tokens")
        return got

    read(other[: args.prompt])  # the first read pays for what a first run costs
    kept_ms: dict[int, list[float]] = {n: [] for n in kept_lengths}
    whole_ms: dict[int, list[float]] = {n: [] for n in kept_lengths}
    reused: dict[int, list[int]] = {n: [] for n in kept_lengths}
    tokens: list[int] = []
    differ = 0
    for r in range(args.rounds):
        for n in kept_lengths:
            at = r * args.prompt
            second = first[at : at + n] + other[at : at + args.prompt - n]
            if r % 2:
                w, k = whole(second), kept(n, at, second)
            else:
                k, w = kept(n, at, second), whole(second)
            kept_ms[n].append(k[0])
            reused[n].append(k[1])
            tokens.append(k[2])
            whole_ms[n].append(w[0])
            differ += k[3] != w[3]
            print(
                f"round {r + 1}/{args.rounds}, kept {n}: {k[0]:.0f} ms kept, {w[0]:.0f} ms whole",
                file=sys.stderr,
                flush=True,
            )
    out = [
        "",
        f"`bench/kept_start.py --prompt {args.prompt} --rounds {args.rounds}"
        + (f" --dtype {args.dtype}" if args.dtype != "auto" else "")
        + f"`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}, model {args.model} "
        f"in {engine.info.dtype} on {threads} threads; {describe()}; "
        f"{(time.perf_counter() - started) / 60:.1f} min. Prompts of "
        f"{statistics.median(tokens):.0f} tokens (median), prefill medians of {args.rounds}; "
        f"the first token differed at {differ} of {len(tokens)} pairs.",
        "",
        "| kept start, tokens | share of the prompt | rest read after it, ms | read whole, ms "
        "| kept ÷ whole |",
        "|---|---|---|---|---|",
    ]
    for n in kept_lengths:
        k, w = statistics.median(kept_ms[n]), statistics.median(whole_ms[n])
        held = statistics.median(reused[n])
        out.append(
            f"| {held:,.0f} | {held / statistics.median(tokens):.0%} | {k:,.0f} | {w:,.0f} "
            f"| {k / w:.2f} |"
        )
    report = "\n".join(out)
    print(report)
    if args.write:
        with args.write.open("a", encoding="utf-8") as fh:
            fh.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
