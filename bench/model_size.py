"""What a user should expect on this CPU from a model the size users import (`make bench`).

The default model is 135M; users import 0.5B to 1.5B coder models. No such weights can be brought
here, so the 0.5B and 1.5B models are built from Qwen2.5-Coder's published configs with random
weights (bench/gpu_speed.py's `build`), which take exactly the time real ones do, with the default
model's vocabulary (its tokenizer; the embedding table is then smaller than Qwen's 151,936 rows, so
decoding reads slightly fewer bytes than the real model). Each is saved as a checkpoint and loaded
by the server's engine (inference.engine.LocalEngine) as the server loads a model, in the dtype
the server picks for this CPU (`auto`: bf16 where the CPU has bf16 instructions, else float32),
with the default model itself beside them. The smaller vocabulary makes the 0.5B model 402M
parameters instead of 494M (the 1.5B 1,386M instead of 1,544M); the embedding is also the output
layer, which every decoding step reads, so their decoding figures are about 15 % (0.5B) and 10 %
(1.5B) better than the real models'. Prefill barely changes: only the last position's scores are
computed. For each, on a prompt of real code:

- a cold request: reading a prompt of --prompt tokens (the median real-repository prompt of issue
  21 is 1,215), its time to the first token;
- decoding speed over --new tokens (prompt lookup off: the rate of the model itself);
- a keystroke: the same prompt and one more character, the key/value cache of the first kept;
- a single-line suggestion's estimated end-to-end time: the cold prefill plus --line tokens.

Threads: --threads (default: every core). Rounds are interleaved across the models, and the
median is reported. Writes a Markdown table to stdout (and --write FILE appends it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_speed import build, unregistered  # noqa: E402  (bench/gpu_speed.py: run as a script, not a package)
from machine import describe  # noqa: E402  (bench/machine.py)

ROOT = Path(__file__).resolve().parents[1]


def random_checkpoint(name: str, tokenizer_dir: Path, folder: Path) -> Any:
    """A StoredModel of the architecture `name` with random weights and the default tokenizer."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    model = build(name, "cpu", torch.bfloat16, vocab=len(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    del model
    for f in tokenizer_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, folder / f.name)
    return unregistered(folder, name, "prefix-only"), params


def stored_parameters(folder: Path) -> int:
    """Parameters of a stored checkpoint, from its safetensors headers (no weights read)."""
    import math

    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="default,0.5b,1.5b")
    p.add_argument("--prompt", type=int, default=1215, help="prompt tokens of a cold request")
    p.add_argument("--new", type=int, default=32, help="tokens decoded to measure the rate")
    p.add_argument("--line", type=int, default=16, help="tokens of a single-line suggestion")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--write", help="append the table to this Markdown file")
    args = p.parse_args()

    from inference.offline import set_offline_env

    set_offline_env()
    from transformers import AutoTokenizer

    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.engine import GenerationRequest, LocalEngine, pick_dtype
    from inference.stops import StopRule
    from inference.store import ModelStore

    store = ModelStore(model_store_root())
    scratch = Path(tempfile.mkdtemp(prefix="airgap-model-size-"))
    engines: dict[str, tuple[Any, int]] = {}
    try:
        with store.held(DEFAULT_MODEL) as default:
            tokenizer_dir = scratch / "tokenizer"
            tokenizer_dir.mkdir()
            for f in default.path.iterdir():
                if f.name.startswith(("tokenizer", "special_tokens")):
                    shutil.copy(f, tokenizer_dir / f.name)
            for name in args.models.split(","):
                print(f"loading {name} ...", file=sys.stderr, flush=True)
                if name == "default":
                    stored, params = default, 0
                else:
                    stored, params = random_checkpoint(name, tokenizer_dir, scratch / name)
                engine = LocalEngine(stored, device="cpu", dtype="auto")
                if not params:
                    params = stored_parameters(stored.path)
                engine.warm_up(lookahead=0)
                engines[name] = (engine, params)

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
            code = "".join(
                path.read_text(encoding="utf-8") for path in sorted(ROOT.glob("inference/*.py"))
            )
            ids = tokenizer(code, add_special_tokens=False).input_ids
            results: dict[str, dict[str, list[float]]] = {
                n: {"prefill": [], "tps": [], "keystroke": [], "short": []} for n in engines
            }
            for r in range(args.rounds):
                # Another stretch of the code each round: no round reuses the last one's cache.
                start = r * 997 % max(1, len(ids) - args.prompt)
                prompt = tokenizer.decode(ids[start : start + args.prompt])
                for name, (engine, _params) in engines.items():
                    print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)

                    def run(text: str, new: int, engine: Any = engine) -> Any:
                        return engine.generate(
                            GenerationRequest(
                                prompt=text,
                                max_new_tokens=new,
                                stop=StopRule(multiline=True, prose=True),
                                lookahead=0,
                                threads=args.threads,
                            )
                        )

                    cold = run(prompt, args.new)
                    results[name]["prefill"].append(cold.prefill_ms)
                    # N tokens take N - 1 decoding steps: the first comes from the prefill.
                    steps = max(cold.new_tokens - 1, 1)
                    results[name]["tps"].append(steps / (cold.decode_ms / 1000))
                    if cold.new_tokens < args.new:  # EOS or a stop text came first
                        results[name]["short"].append(cold.new_tokens)
                    typed = run(prompt + "x", 1)
                    results[name]["keystroke"].append(typed.prefill_ms)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"## Models the size users run, on the CPU: {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"{describe()}, torch {__import__('torch').__version__}, {args.threads} threads, "
        f"{pick_dtype('auto', 'cpu')}, "
        f"commit {commit}. `bench/model_size.py`: a {args.prompt}-token prompt of real code, "
        f"{args.new} new tokens, median of {args.rounds} rounds; 0.5B and 1.5B are Qwen2.5-Coder's "
        "architectures with random weights and the default model's vocabulary (so fewer "
        "parameters than the real models; see the script's docstring).",
        "",
        f"| model | parameters | cold: first token after {args.prompt} prompt tokens (ms) | "
        f"decoding (tokens/s) | a keystroke: 1 more character (ms) | a {args.line}-token line, "
        "cold (ms, estimated) |",
        "|---|---|---|---|---|---|",
    ]
    for name, (_engine, params) in engines.items():
        res = results[name]
        prefill, tps = statistics.median(res["prefill"]), statistics.median(res["tps"])
        keystroke = statistics.median(res["keystroke"])
        label = "default (SmolLM2-135M, real weights)" if name == "default" else f"{name} (random)"
        lines.append(
            f"| {label} | {params / 1e6:.0f}M | {prefill:.0f} | {tps:.1f} | {keystroke:.0f} | "
            f"{prefill + args.line / tps * 1000:.0f} |"
            + (f" (rounds stopped after {res['short']} tokens)" if res["short"] else "")
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
