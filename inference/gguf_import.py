"""GGUF to safetensors, at import time only: the store never holds anything but safetensors."""

from __future__ import annotations

from pathlib import Path

from inference.errors import ModelStoreError
from inference.offline import set_offline_env


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers and write it as a safetensors folder."""
    set_offline_env()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            gguf_file=name,
            local_files_only=True,
            quantization_config=GgufConfig(dequantize=True),
        )
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise ModelStoreError(
            f"transformers could not convert {gguf} ({exc}). Check that its architecture is one "
            "transformers reads from GGUF, or import the model's safetensors folder instead."
        ) from exc
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
