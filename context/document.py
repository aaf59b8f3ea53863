"""An open document, kept parsed as the editor edits it.

LSP sends positions in UTF-16 code units; tree-sitter counts UTF-8 bytes and (row, byte column)
points. Each ranged change is told to the old tree with `Tree.edit`, so that the reparse after a
keystroke reuses the subtrees the edit did not touch. Not all of them: tree-sitter will not reuse
"fragile" nodes (the grammars' repeat nodes, often), so a reparse still costs a fraction of a full
parse that grows with the file (5,000 lines of Ada: about a third).

Lines end at "\\n", as LSP clients split them; a "\\r" just before the "\\n" belongs to the line
end, so a column past the content lands before it.

A tree takes far more memory than its text: 140 times a file of `x = 1` lines, 190 times one line
of `1,` repeated (tree-sitter keeps a node for each token). A document over `MAX_PARSED_BYTES` is
kept as text only, with no tree, until an edit brings it back under the limit.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from tree_sitter import Parser, Tree

from context.languages import Language
from context.text import utf16_to_index

# As the workspace index's file limit: at most a few hundred MB of tree for one document.
MAX_PARSED_BYTES = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One LSP content change: a range in (line, UTF-16 character) or None for the whole text."""

    text: str
    start: tuple[int, int] | None = None
    end: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a ranged change needs both a start and an end")


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    """What one change did to the source, as tree-sitter's `Tree.edit` takes it: bytes of the UTF-8
    source and (row, byte column) points. Whoever keeps offsets into the document can shift them."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: tuple[int, int]
    old_end_point: tuple[int, int]
    new_end_point: tuple[int, int]


_CR = ord("\r")
_LF = ord("\n")
_NEWLINE = re.compile(b"\n")


def _encode(text: str) -> bytes:
    # A lone surrogate can arrive from a JSON escape: keep it (3 bytes) rather than fail the edit.
    return text.encode("utf-8", "surrogatepass")


def _starts(parts: Sequence[bytes], offset: int = 0) -> array[int]:
    """Where each of `parts` begins once they are joined with one-unit separators."""
    starts = array("q", [offset])
    for part in parts[:-1]:
        offset += len(part) + 1
        starts.append(offset)
    return starts


@dataclass(frozen=True, slots=True)
class _Location:
    byte: int  # in the UTF-8 source
    point: tuple[int, int]  # tree-sitter's (row, byte column)


@dataclass(frozen=True, slots=True)
class _Buffer:
    """The UTF-8 source and where each line starts in it; replaced, never changed. Bytes only:
    splicing a str with an emoji in it copies four bytes a character and scans them all. The
    starts are an array, 8 bytes a line: a list of ints takes 40 (a file of `x = 1` lines: 7
    times its size)."""

    source: bytes
    starts: array[int]  # the byte offset of each line's start; starts[0] == 0

    @classmethod
    def of(cls, text: str) -> _Buffer:
        source = _encode(text)
        starts = array("q", [0])
        starts.extend(m.end() for m in _NEWLINE.finditer(source))  # no list of the lines
        return cls(source, starts)

    def locate(self, line: int, character: int) -> _Location:
        """An LSP position, clamped to its line's content, or to the end of the text."""
        if line < 0 or character < 0:
            raise ValueError(f"position ({line}, {character}) is negative")
        if line >= len(self.starts):
            last = len(self.starts) - 1
            return _Location(len(self.source), (last, len(self.source) - self.starts[last]))
        begin = self.starts[line]
        if line + 1 < len(self.starts):
            stop = self.starts[line + 1] - 1  # the "\n"
            if stop > begin and self.source[stop - 1] == _CR:
                stop -= 1
        else:
            stop = len(self.source)
        content = self.source[begin:stop]
        if content.isascii():
            column = min(character, len(content))
        else:
            decoded = content.decode("utf-8", "surrogatepass")
            column = len(_encode(decoded[: utf16_to_index(decoded, character)]))
        return _Location(begin + column, (line, column))

    def replaced(self, start: _Location, end: _Location, text: str) -> tuple[_Buffer, _Location]:
        """This buffer with [start, end) replaced by `text`, and where the inserted text ends."""
        new = _encode(text)
        parts = new.split(b"\n")
        shift = len(new) - (end.byte - start.byte)
        starts = self.starts[: start.point[0] + 1] + _starts(parts, start.byte)[1:]
        starts.extend(s + shift for s in self.starts[end.point[0] + 1 :])
        source = self.source[: start.byte] + new + self.source[end.byte :]
        if len(parts) == 1:
            point = (start.point[0], start.point[1] + len(new))
        else:
            point = (start.point[0] + len(parts) - 1, len(parts[-1]))
        return _Buffer(source, starts), _Location(start.byte + len(new), point)


class ParsedDocument:
    """The text of an open document and its tree-sitter tree, edited in step.

    One writer at a time (the server's event loop). A reader on another thread should take `tree`
    once and keep it: an edit never changes a tree handed out before it, it parses a new one.
    """

    def __init__(
        self,
        text: str,
        language: Language | None,
        *,
        version: int = 0,
        max_parsed_bytes: int = MAX_PARSED_BYTES,
    ) -> None:
        self.language = language
        self.max_parsed_bytes = max_parsed_bytes
        self._buffer = _Buffer.of(text)
        self._text: str | None = text  # decoded from the source when asked for, after an edit
        self._version = version
        self._parser: Parser | None = language.parser() if language is not None else None
        self._tree = None if self.oversized else self._parse(self._buffer.source)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._buffer.source.decode("utf-8", "surrogatepass")
        return self._text

    @property
    def source(self) -> bytes:
        """The text as UTF-8, the bytes the tree's offsets count."""
        return self._buffer.source

    @property
    def tree(self) -> Tree | None:
        """None for a language without a grammar, and for an oversized document."""
        return self._tree

    @property
    def line_count(self) -> int:
        """Lines in the text (one more than its line breaks)."""
        return len(self._buffer.starts)

    @property
    def oversized(self) -> bool:
        """Over `max_parsed_bytes`: kept as text only, not parsed."""
        return len(self._buffer.source) > self.max_parsed_bytes

    @property
    def version(self) -> int:
        return self._version

    def apply(self, changes: Sequence[Change], version: int) -> list[Edit]:
        """Apply LSP content changes in order, each against the text the one before it left, then
        reparse once. Nothing changes if one of them is invalid. Returns the edits, in order; a
        whole-text change is one edit from the start to the old and the new end."""
        buffer = self._buffer
        # Edit a copy: a tree already handed out stays true to the text it was parsed from.
        tree = self._tree.copy() if self._tree is not None and changes else None
        # (a document that was oversized has no tree: it is parsed whole once it is back under)
        edits = []
        for change in changes:
            if change.start is None or change.end is None:
                old_end = buffer.locate(len(buffer.starts), 0)
                buffer, tree = _Buffer.of(change.text), None  # nothing of the old tree is reusable
                start, new_end = buffer.locate(0, 0), buffer.locate(len(buffer.starts), 0)
                edits.append(_edit(start, old_end, new_end))
                continue
            start, end = buffer.locate(*change.start), buffer.locate(*change.end)
            # Compared where they land: (0, 9)-(0, 7) on a shorter line is empty at its end.
            if end.byte < start.byte:
                raise ValueError(f"change range ends before it starts: {change.start}-{change.end}")
            buffer, new_end = buffer.replaced(start, end, change.text)
            edit = _edit(start, end, new_end)
            edits.append(edit)
            if tree is not None:
                tree.edit(
                    start_byte=edit.start_byte,
                    old_end_byte=edit.old_end_byte,
                    new_end_byte=edit.new_end_byte,
                    start_point=edit.start_point,
                    old_end_point=edit.old_end_point,
                    new_end_point=edit.new_end_point,
                )
        self._buffer, self._text = buffer, None
        self._version = version
        if self.oversized:
            self._tree = None
        elif changes:
            self._tree = self._parse(buffer.source, tree)
        return edits

    def _parse(self, source: bytes, old: Tree | None = None) -> Tree | None:
        if self._parser is None:
            return None
        # `parse(source, None)` is a TypeError: old_tree may be left out, never passed as None.
        return self._parser.parse(source, old) if old is not None else self._parser.parse(source)

    def window(
        self, line: int, character: int, before: int, after: int, *, step: int = 1
    ) -> Window:
        """The text around an LSP position (clamped like an edit's): at most `before` bytes of
        the source before it and `after` bytes after it, cut at line starts where the cut leaves
        a line, else at a character. What an oversized document's completion reads, rather than
        the whole text.

        The start is a multiple of `step` bytes from the source's start (rounded up: at most
        `before` bytes, at least `before` less a step, before the cut to a line start), so it
        moves at most once per `step` bytes written before the position, not with every line:
        the prompt's start, cut from the window, moves as seldom, and the key/values the engine
        keeps of it survive."""
        source = self._buffer.source
        at = self._buffer.locate(line, character).byte
        step = max(1, step)
        lo = min(at, max(0, -(-(at - before) // step) * step))  # never past the position
        hi = min(len(source), at + after)
        if lo > 0 and source[lo - 1] != _LF and (nl := source.find(b"\n", lo, at)) >= 0:
            lo = nl + 1
        if hi < len(source) and (nl := source.rfind(b"\n", at, hi)) >= 0:
            hi = nl + 1
        while lo < at and source[lo] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            lo += 1
        while hi > at and hi < len(source) and source[hi] & 0xC0 == 0x80:
            hi -= 1
        head = source[lo:at].decode("utf-8", "surrogatepass")
        tail = source[at:hi].decode("utf-8", "surrogatepass")
        return Window(text=head + tail, at=len(head), line=head.count("\n"))

    def byte_offset(self, line: int, character: int) -> int:
        """The UTF-8 byte offset of an LSP position (UTF-16 column), clamped like an edit's."""
        return self._buffer.locate(line, character).byte

    def point(self, line: int, character: int) -> tuple[int, int]:
        """The tree-sitter point (row, byte column) of an LSP position, clamped like an edit's."""
        return self._buffer.locate(line, character).point


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """Part of a document's text, and where a position is in it."""

    text: str
    at: int  # the position's string offset in `text`
    line: int  # the position's line, counted from the window's first line


def _edit(start: _Location, old_end: _Location, new_end: _Location) -> Edit:
    return Edit(
        start_byte=start.byte,
        old_end_byte=old_end.byte,
        new_end_byte=new_end.byte,
        start_point=start.point,
        old_end_point=old_end.point,
        new_end_point=new_end.point,
    )
