"""Prompt formats: the family is read from the vocabulary, the text laid out in its order."""

from __future__ import annotations

import pytest

from inference.prompt_format import FORMATS, detect_format, render

PLAIN_VOCAB = ["<|endoftext|>", "def", "Ġreturn", "Ċ", "begin", "end"]

FIM_TOKENS = {
    "starcoder": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    "qwen2.5-coder": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    "deepseek-coder": ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "codellama": ("▁<PRE>", "▁<SUF>", "▁<MID>"),
}


@pytest.mark.parametrize("family", sorted(FIM_TOKENS))
def test_family_is_detected_from_its_fim_tokens(family: str) -> None:
    vocab = PLAIN_VOCAB + list(FIM_TOKENS[family])
    fmt = detect_format(vocab)
    assert fmt.name == family
    assert fmt.fim


def test_detection_accepts_any_iterable() -> None:
    vocab = iter(PLAIN_VOCAB + list(FIM_TOKENS["qwen2.5-coder"]))
    assert detect_format(vocab).name == "qwen2.5-coder"


@pytest.mark.parametrize(
    "vocab",
    [
        PLAIN_VOCAB,
        [],
        PLAIN_VOCAB + ["<fim_prefix>", "<fim_suffix>"],  # incomplete: no middle token
        PLAIN_VOCAB + ["<PRE>", "<SUF>", "<MID>"],  # not the sentencepiece spelling
    ],
)
def test_anything_else_is_prefix_only(vocab: list[str]) -> None:
    fmt = detect_format(vocab)
    assert fmt.name == "prefix-only"
    assert not fmt.fim


def test_every_fim_format_stops_on_its_own_markers() -> None:
    for name in FIM_TOKENS:
        fmt = FORMATS[name]
        assert fmt.stop, name
        assert fmt.fim_prefix and fmt.fim_suffix and fmt.fim_middle


PREFIX = "function Add (A, B : Natural) return Natural is\nbegin\n   return "
SUFFIX = ";\nend Add;\n"


@pytest.mark.parametrize("family", sorted(FIM_TOKENS))
def test_render_puts_prefix_then_suffix_then_middle(family: str) -> None:
    fmt = FORMATS[family]
    text = render(fmt, prefix=PREFIX, suffix=SUFFIX, path="src/add.adb")
    assert text == f"{fmt.fim_prefix}{PREFIX}{fmt.fim_suffix}{SUFFIX}{fmt.fim_middle}"
    # The model continues right after the middle token.
    assert text.endswith(fmt.fim_middle)
    assert text.index(fmt.fim_prefix) < text.index(PREFIX) < text.index(fmt.fim_suffix)
    assert text.index(fmt.fim_suffix) < text.index(SUFFIX) < text.index(fmt.fim_middle)


def test_starcoder_layout_literally() -> None:
    text = render(FORMATS["starcoder"], prefix="x = ", suffix="\nprint(x)\n")
    assert text == "<fim_prefix>x = <fim_suffix>\nprint(x)\n<fim_middle>"


def test_codellama_layout_literally() -> None:
    # CodeLlama infilling: "<PRE> {prefix} <SUF>{suffix} <MID>".
    text = render(FORMATS["codellama"], prefix="x = ", suffix="\n")
    assert text == "<PRE> x =  <SUF>\n <MID>"


def test_prefix_only_returns_the_prefix_alone() -> None:
    text = render(FORMATS["prefix-only"], prefix=PREFIX, suffix=SUFFIX, path="src/add.adb")
    assert text == PREFIX


SNIPPETS = [
    (
        "src/saturating.ads",
        "package Saturating is\n   function Add (A, B : Natural) return Natural;\n",
    ),
    ("rtl/counter.vhd", "entity counter is\nend entity;\n\n"),
]


@pytest.mark.parametrize("family", ["starcoder", "qwen2.5-coder", "prefix-only"])
def test_snippets_go_first_with_file_separator_and_path(family: str) -> None:
    fmt = FORMATS[family]
    assert fmt.file_sep
    text = render(fmt, prefix=PREFIX, suffix=SUFFIX, path="src/saturating.adb", snippets=SNIPPETS)
    sep = fmt.file_sep
    first = text.index(f"{sep}src/saturating.ads\npackage Saturating is\n")
    second = text.index(f"{sep}rtl/counter.vhd\nentity counter is\nend entity;\n")
    # FIM tokens wrap the current file only, after its path.
    current = text.index(f"{sep}src/saturating.adb\n{fmt.fim_prefix}{PREFIX}")
    assert first < second < current
    # Snippet text is trimmed at its end, then one newline before the next separator.
    assert "end entity;\n\n" not in text
    if fmt.fim:
        assert text.endswith(f"{fmt.fim_suffix}{SUFFIX}{fmt.fim_middle}")
    else:
        assert text.endswith(PREFIX)
        assert SUFFIX not in text


@pytest.mark.parametrize("family", ["deepseek-coder", "codellama"])
def test_snippets_without_a_file_separator_are_plain_blocks(family: str) -> None:
    fmt = FORMATS[family]
    assert not fmt.file_sep
    text = render(fmt, prefix=PREFIX, suffix=SUFFIX, path="src/saturating.adb", snippets=SNIPPETS)
    spec = text.index("package Saturating is")
    vhdl = text.index("entity counter is")
    assert text.index(fmt.fim_prefix) < spec < vhdl < text.index(PREFIX)
    # Each block is separated from the next by one blank line.
    assert "Natural;\n\nentity counter is" in text
    assert "end entity;\n\n" + PREFIX in text
    assert text.endswith(f"{fmt.fim_suffix}{SUFFIX}{fmt.fim_middle}")


def test_no_snippets_adds_no_separator() -> None:
    fmt = FORMATS["qwen2.5-coder"]
    text = render(fmt, prefix=PREFIX, suffix=SUFFIX, path="src/saturating.adb", snippets=[])
    assert fmt.file_sep not in text


def test_qwen_repo_level_fim_puts_file_blocks_before_fim_prefix() -> None:
    fmt = FORMATS["qwen2.5-coder"]
    text = render(fmt, prefix=PREFIX, suffix=SUFFIX, path="src/saturating.adb", snippets=SNIPPETS)
    assert text.startswith(fmt.file_sep)
    assert f"{fmt.file_sep}src/saturating.adb\n{fmt.fim_prefix}{PREFIX}" in text


@pytest.mark.parametrize("family", ["deepseek-coder", "codellama"])
def test_without_a_separator_each_snippet_is_named_in_a_comment(family: str) -> None:
    fmt = FORMATS[family]
    text = render(
        fmt,
        prefix=PREFIX,
        suffix=SUFFIX,
        path="src/saturating.adb",
        snippets=SNIPPETS,
        comment="--",
    )
    assert "-- src/saturating.ads\npackage Saturating is\n" in text
    assert "-- rtl/counter.vhd\nentity counter is\n" in text
    assert text.index("-- src/saturating.ads") < text.index(PREFIX)
