"""Prompt formats by model family: how a prefix, a suffix and context snippets become model text.

Formatting stays on the client, chosen from the model's manifest, so the same locked checkpoint
gets the same prompt whether it runs here or on a team server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFormat:
    name: str
    fim_prefix: str = ""
    fim_suffix: str = ""
    fim_middle: str = ""
    file_sep: str = ""  # repository-format separator before a context file's path, if any
    stop: tuple[str, ...] = ()  # texts that end a completion besides the tokenizer's EOS
    markers: tuple[str, ...] = ()  # tokens whose presence in a vocabulary identifies the family

    @property
    def fim(self) -> bool:
        return bool(self.fim_prefix)


FORMATS: dict[str, PromptFormat] = {
    f.name: f
    for f in (
        PromptFormat(
            name="starcoder",
            fim_prefix="<fim_prefix>",
            fim_suffix="<fim_suffix>",
            fim_middle="<fim_middle>",
            file_sep="<file_sep>",
            stop=("<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
            markers=("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
        ),
        PromptFormat(
            name="qwen2.5-coder",
            fim_prefix="<|fim_prefix|>",
            fim_suffix="<|fim_suffix|>",
            fim_middle="<|fim_middle|>",
            file_sep="<|file_sep|>",
            stop=("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|repo_name|>", "<|im_end|>"),
            markers=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        ),
        PromptFormat(
            name="deepseek-coder",
            fim_prefix="<｜fim▁begin｜>",
            fim_suffix="<｜fim▁hole｜>",
            fim_middle="<｜fim▁end｜>",
            stop=("<｜end▁of▁sentence｜>", "<|EOT|>"),
            markers=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        ),
        PromptFormat(
            name="codellama",
            fim_prefix="<PRE> ",
            fim_suffix=" <SUF>",
            fim_middle=" <MID>",
            stop=(" <EOT>", "<EOT>"),
            markers=("▁<PRE>", "▁<SUF>", "▁<MID>"),
        ),
        # Models without fill-in-the-middle tokens (SmolLM2) see the prefix only.
        PromptFormat(
            name="prefix-only", file_sep="<file_sep>", stop=("<|endoftext|>", "<file_sep>")
        ),
    )
}


def detect_format(vocabulary: Iterable[str]) -> PromptFormat:
    """The family whose FIM tokens the tokenizer has; prefix-only when it has none."""
    vocab = set(vocabulary)
    for fmt in FORMATS.values():
        if fmt.markers and all(m in vocab for m in fmt.markers):
            return fmt
    return FORMATS["prefix-only"]


def render(
    fmt: PromptFormat,
    *,
    prefix: str,
    suffix: str,
    path: str = "",
    snippets: Iterable[tuple[str, str]] = (),
    comment: str = "",
) -> str:
    """The model text for one completion.

    `snippets` are (path, text) pairs of context from other files. They go before the current file
    in the repository format (file separator, path, text) where the family has a separator, and as
    blocks under a comment naming their path (in the current file's `comment` syntax) where it
    has none.
    """
    snippets = list(snippets)
    if snippets and fmt.file_sep:
        # Repository format (StarCoder2, Qwen2.5-Coder, SmolLM2): the other files first, then the
        # current file's path; FIM tokens wrap the current file only.
        files = "".join(f"{fmt.file_sep}{p}\n{text.rstrip()}\n" for p, text in snippets)
        files += f"{fmt.file_sep}{path}\n"
        if not fmt.fim:
            return files + prefix
        return f"{files}{fmt.fim_prefix}{prefix}{fmt.fim_suffix}{suffix}{fmt.fim_middle}"
    # No separator token: each snippet becomes a block under a comment that names its file.
    prefix = (
        "".join(
            f"{comment} {p}\n{text.rstrip()}\n\n" if comment else f"{text.rstrip()}\n\n"
            for p, text in snippets
        )
        + prefix
    )
    if not fmt.fim:
        return prefix
    return f"{fmt.fim_prefix}{prefix}{fmt.fim_suffix}{suffix}{fmt.fim_middle}"
