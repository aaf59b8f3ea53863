"""Decoding speed on a GPU against the limit its memory bandwidth sets (run on the lent GPU).

No weights can be brought onto that machine: the models are built from the configs of real code
models (Qwen2.5-Coder 1.5B and 7B) with random weights, which take exactly the time real ones do.
For each model, in bf16:

- time to first token: reading a prompt of --prompt tokens;
- decoding speed over --new tokens, greedy, two ways: the engine's way (transformers, dynamic
  key/value cache, one forward pass per token) and a static cache with the decoding step compiled
  (torch.compile, mode "reduce-overhead": CUDA graphs), after a warm-up that pays for compiling;
- the limit: each decoding step reads every weight once (of the embedding table, one row), so
  tokens/s <= bandwidth / those bytes; the bandwidth is measured on the device (a large
  on-device copy), and the spec's is printed too;
- with --tokenizer DIR, the server's own engine (inference.engine.LocalEngine) too, on the same
  architecture with the vocabulary of the tokenizer in DIR (the default model's: its files are
  small enough to carry to the GPU machine), saved as a checkpoint and loaded as the server does:
  its uncompiled steps on a dynamic cache, and its GPU path (static cache, steps compiled with
  CUDA graphs at warm-up), without and with prompt lookup, with the warm-up's seconds, whether
  the text is the first way's, and how many graphs ran without CUDA graphs.

The table is written again after each row: a run stopped by its time limit keeps what it did.

    mkdir -p .cache/bench-tok && cp <the default model's folder>/tokenizer* .cache/bench-tok/
    python bench/gpu_speed.py --tokenizer .cache/bench-tok --out results/   # on the GPU
    python bench/gpu_speed.py --smoke --tokenizer .cache/bench-tok          # the CPU: does it run?

Writes a Markdown table to stdout and to OUT/gpu-speed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The configs of the real models (their published config.json), as the architecture to build.
QWEN_CODER = {
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    "smoke": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    },
}
ROOT = Path(__file__).resolve().parents[1]
SPEC_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12, "L4": 0.3e12}


def build(name: str, device: str, dtype: Any, vocab: int = 0) -> Any:
    """The architecture with random weights; `vocab`: another vocabulary size than its own."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **(QWEN_CODER[name] | ({"vocab_size": vocab} if vocab else {})),
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
    )
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = model.to_empty(device=device).to(dtype)
    model.tie_weights()  # to_empty leaves a tied model's two matrices apart
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model.eval()


def unregistered(folder: Path, name: str, prompt_format: str) -> Any:
    """A checkpoint saved in `folder`, as the engine loads a stored model, with no store: random
    weights have no manifest worth keeping."""
    from inference.store import Manifest, StoredModel

    return StoredModel(
        path=folder,
        manifest=Manifest(
            name=f"bench-{name}",
            version="random",
            family="qwen2",
            prompt_format=prompt_format,
            files={},
            source={},
            imported_at="",
        ),
        manifest_sha256="0" * 64,
    )


def bytes_per_step(model: Any) -> int:
    """The weights one decoding step reads: all of them, once, but the embedding table, of which
    it reads one row (unless the output layer is that same matrix)."""
    embed = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight is embed
    return sum(t.numel() * t.element_size() for t in model.parameters() if tied or t is not embed)


def reset_compiler() -> None:
    """A fresh start for torch.compile: each model's graphs would otherwise count towards the
    recompile limit of the function that every transformers forward goes through."""
    import torch

    torch._dynamo.reset()


def graph_skips() -> int:
    """How often inductor ran a graph without CUDA graphs (each skip is logged with its cause)."""
    from torch._dynamo.utils import counters  # noqa: PLC2701 (no public counter of skips)

    return int(counters["inductor"]["cudagraph_skips"])


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large on-device copy (read + write)."""
    import torch

    n = (1 << 30) if device == "cuda" else (1 << 24)
    a = torch.empty(n, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    sync(device)
    started = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    sync(device)
    return 2 * 10 * n / (time.perf_counter() - started)


def eager(model: Any, prompt: Any, new: int, device: str) -> tuple[float, float]:
    """The engine's way: time to first token (s) and decoding tokens/s."""
    import torch

    with torch.inference_mode():
        sync(device)
        t0 = time.perf_counter()
        out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        sync(device)
        t1 = time.perf_counter()
        past = out.past_key_values
        for _ in range(new - 1):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        sync(device)
        t2 = time.perf_counter()
    return t1 - t0, (new - 1) / (t2 - t1)


def compiled(model: Any, prompt: Any, new: int, device: str) -> tuple[float, float, float]:
    """Static cache, compiled decoding step: time to first token, tokens/s, warm-up seconds."""
    import torch

    kwargs = {
        "do_sample": False,
        "cache_implementation": "static",
        "pad_token_id": 0,
        "eos_token_id": None,
    }
    # generate() compiles the decoding step itself for a static cache (inductor,
    # "reduce-overhead"), and never the prefill: compiling model.forward would compile both.
    with torch.inference_mode():
        t = time.perf_counter()
        model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **kwargs)  # compiles
        sync(device)
        warmup = time.perf_counter() - t
        t0 = time.perf_counter()
        model.generate(prompt, max_new_tokens=1, **kwargs)
        sync(device)
        ttft = time.perf_counter() - t0
        t1 = time.perf_counter()
        model.generate(prompt, max_new_tokens=new, min_new_tokens=new, **kwargs)
        sync(device)
        total = time.perf_counter() - t1
    return ttft, (new - 1) / max(total - ttft, 1e-9), warmup


def engine_rows(
    name: str, tokenizer_dir: Path, device: str, prompt_len: int, new: int, bandwidth: float
) -> list[str]:
    """The server's engine on this architecture: uncompiled on a dynamic cache, then its GPU
    path (on the CPU, for --smoke: the static cache, uncompiled)."""
    import shutil
    import tempfile

    import torch
    from transformers import AutoTokenizer

    from inference.engine import GenerationRequest, LocalEngine
    from inference.stops import StopRule

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    model = build(name, "cpu", torch.bfloat16, vocab=len(tokenizer))
    weight_bytes = bytes_per_step(model)
    folder = Path(tempfile.mkdtemp(prefix="airgap-gpu-bench-"))
    rows = []
    try:
        model.save_pretrained(folder)
        del model
        for f in tokenizer_dir.iterdir():
            shutil.copy(f, folder / f.name)
        stored = unregistered(folder, name, "qwen2.5-coder")
        # A prompt of real code, cut to prompt_len tokens.
        code = "".join(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("inference/*.py")))
        ids = tokenizer(code, add_special_tokens=False).input_ids[:prompt_len]
        prompt = tokenizer.decode(ids)
        gpu = device == "cuda"
        # Uncompiled on a dynamic cache; then the GPU path (a static cache, uncompiled on a CPU),
        # without prompt lookup and with it (its padded drafts: the second compiled shape).
        gpu_path = {} if gpu else {"static_cache": True, "compile_backend": ""}
        ways = (({"static_cache": False}, 0), (gpu_path, 0), (gpu_path, 8))
        first_text = None
        for options, lookahead in ways:
            reset_compiler()
            skips = graph_skips()
            started = time.perf_counter()
            engine = LocalEngine(stored, device=device, dtype="bfloat16", **options)
            load = time.perf_counter() - started
            warm = engine.warm_up(lookahead=lookahead)
            gen = engine.generate(
                GenerationRequest(
                    prompt=prompt,
                    max_new_tokens=new,
                    stop=StopRule(multiline=True, prose=True),
                    lookahead=lookahead,
                )
            )
            first_text = gen.text if first_text is None else first_text
            limit = bandwidth / weight_bytes
            notes = [f"lookahead {lookahead}"]
            if lookahead:
                notes.append(f"{gen.accepted_tokens}/{gen.drafted_tokens} drafts kept")
            notes.append("same text" if gen.text == first_text else "other text")
            if gpu:
                notes.append(f"{graph_skips() - skips} CUDA-graph skips")
            rows.append(
                f"| {name} | {weight_bytes / 1e9:.2f} | the engine: {engine.steps} "
                f"({', '.join(notes)}) | {gen.prefill_ms:.0f} | {gen.tokens_per_second:.0f} | "
                f"{limit:.0f} | {gen.tokens_per_second / limit:.0%} | {warm:.0f} "
                f"(load {load:.0f}) |"
            )
            print(rows[-1], flush=True)
            del engine
            if gpu:
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="1.5b,7b")
    p.add_argument("--prompt", type=int, default=1024, help="prompt tokens")
    p.add_argument("--new", type=int, default=128, help="new tokens")
    p.add_argument("--out", default=os.environ.get("OUT", ""))
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a tiny model on the CPU")
    p.add_argument("--tokenizer", type=Path, help="a tokenizer's folder: measure the engine too")
    p.add_argument("--engine-models", default="1.5b", help="the models to run the engine on")
    args = p.parse_args()

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run this on the GPU machine, or --smoke here", file=sys.stderr)
        return 2
    names = ["smoke"] if args.smoke else args.models.split(",")
    prompt_len, new = (64, 16) if args.smoke else (args.prompt, args.new)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    spec = next((bw for key, bw in SPEC_BANDWIDTH.items() if key in gpu), None)
    measured_bw = copy_bandwidth(device)
    lines = [
        f"date: {datetime.now(UTC).date()}; device: {gpu}; torch {torch.__version__}; "
        f"prompt {prompt_len} tokens, {new} new tokens, bf16, random weights",
        f"memory bandwidth: measured {measured_bw / 1e12:.2f} TB/s (on-device copy)"
        + (f", spec {spec / 1e12:.2f} TB/s" if spec else ""),
        "",
        "| model | weights read per step GB | way | time to first token ms | tokens/s "
        "| limit tokens/s (measured bandwidth) | share of the limit | warm-up s |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def save() -> None:  # after every row: a run cut short by its time limit keeps its rows
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu-speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    for name in names:
        reset_compiler()
        model = build(name, device, torch.bfloat16)
        weight_bytes = bytes_per_step(model)
        limit = measured_bw / weight_bytes
        prompt = torch.randint(0, model.config.vocab_size, (1, prompt_len), device=device)
        eager(model, prompt[:, :16], 4, device)  # first kernels, allocator: not the measurement
        ttft, tps = eager(model, prompt, new, device)
        lines.append(
            f"| {name} | {weight_bytes / 1e9:.2f} | dynamic cache, eager | {ttft * 1000:.0f} | "
            f"{tps:.0f} | {limit:.0f} | {tps / limit:.0%} | - |"
        )
        print(lines[-1], flush=True)
        save()
        if not args.no_compile and not args.smoke:
            try:
                ttft, tps, warm = compiled(model, prompt, new, device)
            except Exception as exc:  # noqa: BLE001 - one failed way must not lose the others
                lines.append(f"| {name} | | static cache, compiled | failed: {exc!r:.200} |")
            else:
                lines.append(
                    f"| {name} | {weight_bytes / 1e9:.2f} | static cache, compiled | "
                    f"{ttft * 1000:.0f} | {tps:.0f} | {limit:.0f} | {tps / limit:.0%} | "
                    f"{warm:.0f} |"
                )
            print(lines[-1], flush=True)
            save()
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
        if args.tokenizer and (args.smoke or name in args.engine_models.split(",")):
            try:
                lines += engine_rows(name, args.tokenizer, device, prompt_len, new, measured_bw)
            except Exception as exc:  # noqa: BLE001 - one failed way must not lose the others
                lines.append(f"| {name} | | engine | failed: {exc!r:.300} |")
                print(lines[-1], flush=True)
            save()
    print("\n".join(lines))
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
