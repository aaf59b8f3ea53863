"""Positions: LSP counts columns in UTF-16 code units, Python strings in code points. And where a
file's code starts."""

from __future__ import annotations

from collections.abc import Sequence


def printable(text: str) -> str:
    """`text` with each lone surrogate (a JSON escape can carry one into a document) made
    U+FFFD: the same length, so offsets hold, and text that encodes, for the tokenizer and
    the audit log."""
    if text.isascii():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def utf16_to_index(line: str, character: int) -> int:
    """The index in `line` of an LSP column, clamped to the line; never inside a surrogate pair."""
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def offset_at(text: str, line: int, character: int) -> int:
    """The string offset of an LSP position; a position past the end is clamped to the end."""
    if line < 0 or character < 0:
        raise ValueError(f"position ({line}, {character}) is negative")
    start = 0
    for _ in range(line):
        nl = text.find("\n", start)
        if nl < 0:
            return len(text)
        start = nl + 1
    end = text.find("\n", start)
    current = text[start : end if end >= 0 else len(text)]
    return start + utf16_to_index(current.rstrip("\r"), character)


def position_at(source: bytes, offset: int) -> tuple[int, int]:
    """The LSP position (line, UTF-16 column) of a UTF-8 byte offset in `source`."""
    line_start = source.rfind(b"\n", 0, offset) + 1
    column = source[line_start:offset].decode("utf-8", "replace")
    return source.count(b"\n", 0, offset), len(column.encode("utf-16-le")) // 2


def first_code_line(lines: Sequence[str], comment: str) -> int:
    """Past a file's opening comments (mostly a licence header in third-party code)."""
    for n, line in enumerate(lines):
        text = line.strip()
        if text and not text.startswith((comment, "/*", "*")):
            return n
    return 0
