"""Shared test helpers: the embedded default model and fixture files with a cursor marker."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.offline import set_offline_env

set_offline_env()  # before anything imports transformers

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
# The tiers, by folder: tests/unit (no server, no model weights: `make check`), tests/model (the
# default model's weights in this process), tests/e2e (the real server over stdio). Each test is
# marked with its folder's tier, so `pytest -m "not e2e"` and the like pick a tier.
TIERS = ("unit", "model", "e2e")
CURSOR = "<|>"
# The store that holds the `babble_model`: known before the fixture runs, because a server's
# environment (AIRGAP_LSP_MODEL_STORE) is fixed when a test module is imported.
BABBLE_STORE = Path(tempfile.gettempdir()) / f"airgap-babble-store-{os.getpid()}"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


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
    from airgap_lsp.paths import DEFAULT_MODEL, model_store_root
    from inference.errors import ModelNotFound
    from inference.store import ModelStore

    try:
        return ModelStore(model_store_root()).verify(DEFAULT_MODEL)
    except ModelNotFound as exc:
        pytest.fail(f"{exc}\nThe tests need the embedded default model: run `make model`.")


def audited_model(stored) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An audit line's `model`: the stored model a suggestion was made by."""
    return {
        "name": stored.manifest.name,
        "version": stored.manifest.version,
        "manifest_sha256": stored.manifest_sha256,
    }


def save_random_checkpoint(real_model: Path, folder: Path) -> Path:
    """A small checkpoint of `real_model`'s architecture and tokenizer with random weights, saved
    by transformers (safetensors): fast to run, and it writes fluent nonsense."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    real = LlamaConfig.from_pretrained(real_model, local_files_only=True)
    config = LlamaConfig(
        vocab_size=real.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=real.max_position_embeddings,
        bos_token_id=real.bos_token_id,
        eos_token_id=real.eos_token_id,
        tie_word_embeddings=False,
        initializer_range=1.0,  # wide random weights: varied words, not one token repeated
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(real_model / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def babble_model(default_model) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A real checkpoint of the default model's architecture and tokenizer with small random
    weights, imported into BABBLE_STORE: it writes fluent nonsense (never code that parses) fast,
    for tests about the server rather than the model's answers. Yields its store reference."""
    from inference.store import ModelStore

    source = BABBLE_STORE.parent / (BABBLE_STORE.name + "-src")
    for folder in (BABBLE_STORE, source):
        shutil.rmtree(folder, ignore_errors=True)  # left by a killed run of the same pid
    try:
        save_random_checkpoint(default_model.path, source)
        yield ModelStore(BABBLE_STORE).import_model(source, name="babble", version="1").ref
    finally:
        for folder in (BABBLE_STORE, source):
            shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in TIERS:
            item.add_marker(folder)
