"""What is known of a name, for a hover: its declaration, contract, doc comment and place, from
the workspace index or, where the index does not hold it, from the open document itself."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from context.document import ParsedDocument
from context.index import WorkspaceIndex
from context.languages import family, for_path
from context.retrieval import SPEC_SUFFIXES
from context.symbols import Definition, definitions

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


def _rank(where: Path, d: Definition, path: Path, line: int) -> tuple[int, int, int, int]:
    here = where == path and d.start_line <= line <= d.end_line
    return (
        0 if where.suffix.lower() in SPEC_SUFFIXES else 1,  # a spec over a body
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
    doc: ParsedDocument | None = None,
) -> Declaration | None:
    """The best declaration of `name` for a use at `path`:`line`, in the same language family.

    With `doc`, the open document at `path`: its own declarations are read from the tree it
    keeps, not from the index's entry for `path`, and compete with the index's from the other
    files. That is what a hover needs while the index does not hold the editor's text: during
    the scan (which reads the disk's), or for a file the index does not take (outside the
    workspace, or one `.gitignore` leaves out). It costs a definitions query over the document:
    a caller on an event loop runs it in a thread.
    """
    language = doc.language if doc is not None and doc.language is not None else for_path(path)
    same = family(language.name) if language else None
    wanted = name.lower()
    own = doc is not None and doc.tree is not None and doc.language is not None
    here = path.resolve()
    # (rank, the definition, its file, language, comment marker and lines)
    Candidate = tuple[tuple[int, int, int, int], Definition, Path, str, str, tuple[str, ...]]
    candidates: list[Candidate] = []
    for h in index.lookup(name):
        if same is not None and family(h.entry.language) != same:
            continue
        if h.definition.name.lower() != wanted or (own and h.entry.path == here):
            continue
        entry, d = h.entry, h.definition
        lang = for_path(entry.path)
        marker = lang.line_comment if lang else "#"
        rank = _rank(entry.path, d, here, line)
        candidates.append((rank, d, entry.path, entry.language, marker, entry.lines))
    if own:
        assert doc is not None and doc.tree is not None and doc.language is not None
        ours, lines = doc.language, tuple(doc.text.split("\n"))
        for d in definitions(doc.source, ours, doc.tree):
            if d.name.lower() == wanted:
                rank = _rank(here, d, here, line)
                candidates.append((rank, d, here, ours.name, ours.line_comment, lines))
    if not candidates:
        return None
    _, d, where, language_name, marker, lines = min(candidates, key=lambda c: c[0])
    return _declaration(d, where, language_name, marker, lines, relative)


def _declaration(
    d: Definition,
    where: Path,
    language: str,
    marker: str,
    lines: tuple[str, ...],
    relative: Callable[[Path], str],
) -> Declaration:
    """`d` as a hover shows it, cut from `lines`, the text of the file `where`."""
    doc = _comment_block(lines, d.start_line - 1, -1, marker)
    if not doc and language == "ada":  # GNAT style: the comment follows the spec
        doc = _comment_block(lines, d.end_line + 1, 1, marker)
    text = "\n".join(lines[d.start_line : d.end_line + 1][:MAX_DECLARATION_LINES]).rstrip()
    return Declaration(
        name=d.name,
        kind=d.kind,
        path=relative(where),
        absolute=where,
        line=d.start_line,
        language=language,
        signature=d.signature,
        contracts=d.contracts,
        doc="\n".join(doc),
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
