"""Shared test helpers: the embedded default model and fixture files with a cursor marker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.offline import set_offline_env

set_offline_env()  # before anything imports transformers

FIXTURES = Path(__file__).parent / "fixtures"
CURSOR = "<|>"


@dataclass(frozen=True)
class CursorFile:
    path: Path
    text: str  # the file without the marker
    line: int
    character: int  # UTF-16 column, as LSP counts


def cursor_file(relative: str) -> CursorFile:
    """A fixture file whose cursor position is marked with `<|>`."""
    path = FIXTURES / relative
    raw = path.read_text(encoding="utf-8")
    at = raw.index(CURSOR)
    before = raw[:at]
    line = before.count("\n")
    column = before[before.rfind("\n") + 1 :]
    character = len(column.encode("utf-16-le")) // 2
    return CursorFile(path=path, text=raw.replace(CURSOR, "", 1), line=line, character=character)


def save_tiny_checkpoint(folder: Path) -> Path:
    """A real, tiny Llama checkpoint saved by transformers (safetensors), for tests that need a
    model's files but not its answers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def default_model():  # type: ignore[no-untyped-def]
    """The embedded default model, verified; `make model` puts it in the store."""
    from inference.errors import ModelNotFound
    from inference.store import ModelStore
    from lsp_server.paths import DEFAULT_MODEL, model_store_root

    try:
        return ModelStore(model_store_root()).verify(DEFAULT_MODEL)
    except ModelNotFound as exc:
        pytest.fail(f"{exc}\nThe tests need the embedded default model: run `make model`.")
