"""What a hover shows of a name: from the workspace index, or from the open document itself when
the index does not hold it (still being built, or a file the scan does not take)."""

from __future__ import annotations

from pathlib import Path

from context.declarations import Declaration, find_declaration
from context.document import ParsedDocument
from context.index import WorkspaceIndex
from context.languages import for_document, for_path
from tests.conftest import CursorFile, cursor_file

GUIDANCE = "hover/guidance.adb"


def opened(doc: CursorFile, text: str | None = None, **kwargs: int) -> ParsedDocument:
    """The document as the editor has it open (`text`: its unsaved text)."""
    return ParsedDocument(doc.text if text is None else text, for_path(doc.path), **kwargs)


def relative(path: Path) -> str:
    return f"ws/{path.name}"


def on_disk(folder: Path, doc: CursorFile) -> tuple[Path, WorkspaceIndex]:
    """The fixture saved in `folder`, and the index of it: the path as the index and the hover
    name it (resolved)."""
    path = folder / "guidance.adb"
    path.write_text(doc.text, encoding="utf-8")
    index = WorkspaceIndex([folder])
    index.scan()
    return path.resolve(), index


def declaration_in_document(
    doc: ParsedDocument,
    name: str,
    path: Path,
    line: int,
    relative: object,
    index: WorkspaceIndex | None = None,
) -> Declaration | None:
    """What a hover finds for the open document `doc` at `path` (an empty index by default)."""
    return find_declaration(index or WorkspaceIndex(()), name, path, line, relative, doc)  # type: ignore[arg-type]


def test_a_name_declared_in_the_open_document_is_found_with_its_contract_and_comment() -> None:
    doc = cursor_file(GUIDANCE)

    decl = declaration_in_document(opened(doc), "Rate", doc.path, doc.line, relative)

    assert decl is not None
    # The forward declaration that carries the contract, over the body the cursor is not in.
    assert (decl.name, decl.kind, decl.line) == ("Rate", "function", 5)
    assert decl.contracts == ("Pre => Step in -100 .. 100",)
    assert decl.doc == "The climb rate for one step, bounded by the airframe."
    assert decl.text.startswith("   function Rate (Step : Integer) return Integer\n")
    assert (decl.path, decl.absolute, decl.language) == ("ws/guidance.adb", doc.path, "ada")


def test_the_document_and_the_index_show_the_same_declaration_of_the_same_text(
    tmp_path: Path,
) -> None:
    doc = cursor_file(GUIDANCE)
    path, index = on_disk(tmp_path, doc)

    for name in ("Rate", "rate", "UPDATE", "Guidance"):  # Ada does not care about case
        from_index = find_declaration(index, name, path, doc.line, relative)
        from_document = declaration_in_document(opened(doc), name, path, doc.line, relative)
        assert from_index is not None, name
        assert from_document == from_index, name


def test_the_editors_text_is_read_not_the_disks(tmp_path: Path) -> None:
    """The scan may have put the disk's text over the editor's: a declaration typed since the
    last save is in the document only."""
    doc = cursor_file(GUIDANCE)
    path, index = on_disk(tmp_path, doc)
    typed = "   --  Typed since the last save.\n   Gain : constant Integer := 3;\n\n"
    at = doc.text.index("   procedure Update")
    unsaved = opened(doc, doc.text[:at] + typed + doc.text[at:])

    assert find_declaration(index, "Gain", path, doc.line, relative) is None
    decl = declaration_in_document(unsaved, "Gain", path, doc.line + 3, relative, index)
    assert decl is not None
    assert decl.text == "   Gain : constant Integer := 3;"
    assert decl.doc == "Typed since the last save."
    # A name the disk's text declares too: the document's lines, not the disk's.
    saved = find_declaration(index, "Rate", path, doc.line, relative)
    assert saved is not None and saved.line == 5
    shifted = opened(doc, "--  A line typed at the top.\n" + doc.text)
    moved = declaration_in_document(shifted, "Rate", path, doc.line + 1, relative, index)
    assert moved is not None and moved.line == 6


def test_the_documents_own_declaration_competes_with_the_other_files(tmp_path: Path) -> None:
    """A file the index does not hold, and another file of the workspace that declares the same
    name without a contract: the document's declaration, which carries one, is shown."""
    doc = cursor_file(GUIDANCE)
    (tmp_path / "other.adb").write_text(
        "package body Other is\n   function Rate return Integer is (1);\nend Other;\n",
        encoding="utf-8",
    )
    index = WorkspaceIndex([tmp_path])
    index.scan()
    elsewhere = doc.path  # the fixture, outside the indexed folder

    decl = declaration_in_document(opened(doc), "Rate", elsewhere, doc.line, relative, index)

    assert decl is not None and decl.absolute == elsewhere
    assert decl.contracts == ("Pre => Step in -100 .. 100",)
    # A name only the other file declares is still found there.
    (tmp_path / "other.adb").write_text(
        "package body Other is\n   procedure Hold (X : Integer) is null;\nend Other;\n",
        encoding="utf-8",
    )
    index.update((tmp_path / "other.adb").resolve())
    held = declaration_in_document(opened(doc), "Hold", elsewhere, doc.line, relative, index)
    assert held is not None and held.path == "ws/other.adb"


def test_the_comment_marker_is_the_documents_language_not_its_files_suffix() -> None:
    """A file with no suffix the registry knows, opened as Ada by the editor."""
    doc = cursor_file(GUIDANCE)
    scratch = doc.path.with_name("guidance.scratch")
    parsed = ParsedDocument(doc.text, for_document(scratch, "ada"))

    decl = declaration_in_document(parsed, "Rate", scratch, doc.line, relative)

    assert decl is not None
    assert decl.doc == "The climb rate for one step, bounded by the airframe."


def test_nothing_for_a_name_it_does_not_declare_or_without_a_tree() -> None:
    doc = cursor_file(GUIDANCE)
    assert declaration_in_document(opened(doc), "Hold", doc.path, doc.line, relative) is None
    assert declaration_in_document(opened(doc), "Rat", doc.path, doc.line, relative) is None
    # Too large to parse: kept as text only, and not parsed again for a hover.
    large = opened(doc, max_parsed_bytes=100)
    assert large.tree is None
    assert declaration_in_document(large, "Rate", doc.path, doc.line, relative) is None
    plain = ParsedDocument(doc.text, None)  # a language the registry does not know
    assert declaration_in_document(plain, "Rate", doc.path, doc.line, relative) is None
