"""Where a completion ends: the end of the line, or the end of the enclosing block.

Pure text rules, checked after every decoding step so that generation stops as soon as the
suggestion is complete instead of running to the token limit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRule:
    multiline: bool
    base_indent: int = 0  # a line indented less than this has left the block the cursor is in
    stop_texts: tuple[str, ...] = ()  # the format's end markers (EOS spelled as text, file seps)
    # Prose or a whole rewrite (hover, code actions): no line or block rule, only the stop texts,
    # EOS and the budgets end it.
    prose: bool = False


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def wants_multiline(line_before_cursor: str, line_after_cursor: str) -> bool:
    """A cursor alone on its line asks for a block; a cursor inside a line asks for its rest."""
    return not line_before_cursor.strip() and not line_after_cursor.strip()


def block_indent(line_before_cursor: str) -> int:
    """The indentation of the block the cursor is in, judged from its own line."""
    if not line_before_cursor.strip():
        return len(line_before_cursor)
    return indent_of(line_before_cursor)


def cut(text: str, rule: StopRule) -> tuple[str, str | None]:
    """The part of `text` to keep and why generation stops, or (text, None) to go on.

    When several rules apply, the earliest cut wins.
    """
    hits = [at for marker in rule.stop_texts if (at := text.find(marker)) >= 0]
    if hits:
        if rule.prose:
            return text[: min(hits)], "stop_text"
        kept, why = _cut_lines(text[: min(hits)], rule)
        return kept, why or "stop_text"
    if rule.prose:
        return text, None
    return _cut_lines(text, rule)


def _cut_lines(text: str, rule: StopRule) -> tuple[str, str | None]:
    if not rule.multiline:
        at = text.find("\n")
        if at >= 0:
            return text[:at], "end_of_line"
        return text, None
    lines = text.split("\n")
    blank_run = 0
    for i, line in enumerate(lines[1:], start=1):
        complete = i < len(lines) - 1
        if line.strip():
            blank_run = 0
            if indent_of(line) < rule.base_indent:
                return "\n".join(lines[:i]).rstrip(), "end_of_block"
        elif complete:
            blank_run += 1
            if blank_run == 2:
                return "\n".join(lines[: i - 1]).rstrip(), "end_of_block"
    return text, None
