"""What the index knows of a name, for a hover: its declaration, contract, doc comment and place."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from context.index import Hit, WorkspaceIndex
from context.languages import family, for_path
from context.retrieval import SPEC_SUFFIXES

MAX_DECLARATION_LINES = 30
MAX_DOC_LINES = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class Declaration:
    name: str
    kind: str
    path: str  # relative to the workspace root where it is inside one
    absolute: Path
    line: int  # 0-based first line of the declaration
    language: str
    signature: str
    contracts: tuple[str, ...]
    doc: str  # the comment right above (or, in Ada, right below) the declaration
    text: str  # the whole declaration, at most MAX_DECLARATION_LINES lines
    sha256: str  # of `text`: the audit line's source


def _rank(hit: Hit, path: Path, line: int) -> tuple[int, int, int, int]:
    d = hit.definition
    here = hit.entry.path == path and d.start_line <= line <= d.end_line
    return (
        0 if hit.entry.path.suffix.lower() in SPEC_SUFFIXES else 1,  # a spec over a body
        0 if d.contracts else 1,  # the declaration that carries the contract
        0 if here else 1,  # then the one the cursor is in
        d.end_line - d.start_line,  # a declaration over a long body
    )


def _comment_block(lines: tuple[str, ...], start: int, step: int, marker: str) -> list[str]:
    found: list[str] = []
    at = start
    while 0 <= at < len(lines) and len(found) < MAX_DOC_LINES:
        stripped = lines[at].strip()
        if not stripped.startswith(marker):
            break
        found.append(stripped[len(marker) :].strip())
        at += step
    return found[::-1] if step < 0 else found


def find_declaration(
    index: WorkspaceIndex,
    name: str,
    path: Path,
    line: int,
    relative: Callable[[Path], str],
) -> Declaration | None:
    """The best declaration of `name` for a use at `path`:`line`, in the same language family."""
    language = for_path(path)
    same = family(language.name) if language else None
    hits = [
        h
        for h in index.lookup(name)
        if same is None or family(h.entry.language) == same
        if h.definition.name.lower() == name.lower()
    ]
    if not hits:
        return None
    hit = min(hits, key=lambda h: _rank(h, path, line))
    d, entry = hit.definition, hit.entry
    lang = for_path(entry.path)
    marker = lang.line_comment if lang else "#"
    doc = _comment_block(entry.lines, d.start_line - 1, -1, marker)
    if not doc and entry.language == "ada":  # GNAT style: the comment follows the spec
        doc = _comment_block(entry.lines, d.end_line + 1, 1, marker)
    text = "\n".join(entry.lines[d.start_line : d.end_line + 1][:MAX_DECLARATION_LINES]).rstrip()
    return Declaration(
        name=d.name,
        kind=d.kind,
        path=relative(entry.path),
        absolute=entry.path,
        line=d.start_line,
        language=entry.language,
        signature=d.signature,
        contracts=d.contracts,
        doc="\n".join(doc),
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
