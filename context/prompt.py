"""What the model sees for one completion: the text around the cursor, cut to a budget."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Snippet:
    """Context from another file; recorded in the audit line as a source."""

    path: str
    start_line: int
    end_line: int
    text: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    path: str
    language: str
    prefix: str  # text before the cursor, without the cursor line's trailing indentation
    suffix: str  # text after the cursor
    trailing_ws: (
        str  # whitespace cut from the end of the prefix; the model writes it, we take it off
    )
    line_before: str  # the cursor line up to the cursor
    line_after: str  # the cursor line from the cursor
    snippets: tuple[Snippet, ...] = ()


def _tail_lines(text: str, limit: int) -> str:
    """The end of `text`, at most `limit` characters, starting at a line start where possible."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[-limit:]
    nl = cut.find("\n")
    return cut[nl + 1 :] if 0 <= nl < len(cut) - 1 else cut


def _head_lines(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    nl = cut.rfind("\n")
    return cut[: nl + 1] if nl > 0 else cut


def build_prompt(
    text: str,
    at: int,
    *,
    path: str,
    language: str,
    max_prefix_chars: int,
    max_suffix_chars: int,
) -> Prompt:
    """The prompt for a cursor at string offset `at` in `text` (`offset_at` turns an LSP
    position into one)."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = len(text) if line_end < 0 else line_end
    line_before = text[line_start:at]
    line_after = text[at:line_end].rstrip("\r")
    prefix = text[:at]
    # A prompt that ends in spaces makes models emit an odd extra space (the space belongs to the
    # next token): let the model write that whitespace itself and take it off the suggestion.
    trailing_ws = line_before[len(line_before.rstrip(" \t")) :]
    prefix = prefix[: len(prefix) - len(trailing_ws)]
    return Prompt(
        path=path,
        language=language,
        prefix=_tail_lines(prefix, max_prefix_chars),
        suffix=_head_lines(text[at:], max_suffix_chars),
        trailing_ws=trailing_ws,
        line_before=line_before,
        line_after=line_after,
    )


def strip_typed_whitespace(generated: str, typed: str) -> str:
    """Take the whitespace the user already typed before the cursor off a suggestion."""
    if not typed:
        return generated
    if generated.startswith(typed):
        return generated[len(typed) :]
    return generated.lstrip(" \t")


def suggestion_text(generated: str, typed: str) -> str:
    """What the editor shows for a generation: without the whitespace the user already typed
    and without trailing blanks. `audit replay` applies the same, so it compares like with like."""
    return strip_typed_whitespace(generated, typed).rstrip()
