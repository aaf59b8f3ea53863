"""Definitions and imports of one file, found by the registry's tree-sitter queries.

The prompt builder uses them to pick context: the signatures (and, for SPARK, the contracts) of
what a file declares, and the units it depends on.

Query conventions (`context/queries/<stem>-definitions.scm` and `<stem>-imports.scm`):

- a definitions pattern captures the whole declaration as `@definition.<kind>` (a kind from
  `DEFINITION_KINDS`), its name as `@name` (several when one declaration names several), and
  optionally `@body`, where the signature stops. When two patterns capture the same name, the wider
  declaration wins (a decorated function, a generic around its package), then the earlier pattern,
  then the earliest `@body` (a pattern that captures "the first statement" matches once for each).
- optionally `@signature` instead of `@body`: the signature ends where that node ends (a module's
  header with its ports).
- an imports pattern captures the imported unit's name as `@import.<kind>` (a kind from
  `IMPORT_KINDS`). Captures whose name starts with `_` are helpers for predicates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor, Tree

from context.languages import Language

DEFINITION_KINDS = frozenset(
    {
        "package",
        "package_body",
        "subprogram",
        "function",
        "procedure",
        "type",
        "subtype",
        "task",
        "protected",
        "generic",
        "entity",
        "architecture",
        "component",
        "signal",
        "constant",
        "variable",
        "class",
        "method",
        "struct",
        "enum",
        "interface",
        "trait",
        "module",
        "macro",
        "field",
    }
)
IMPORT_KINDS = frozenset({"with", "use", "import", "include", "library"})
SIGNATURE_MAX_LINES = 20

_WS = re.compile(r"\s+")
# What says "everything in it" after an imported unit: VHDL `.all`, `::*` (Rust, SystemVerilog),
# `.*` (Java); the unit is what comes before.
_WILDCARD = re.compile(r"(?:\.all|::\*|\.\*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Definition:
    name: str  # the defined identifier as written
    kind: str  # one of DEFINITION_KINDS
    start_line: int  # 0-based, first line of the whole declaration
    end_line: int  # 0-based, last line of the whole declaration (inclusive)
    signature: str  # the declaration up to where its body starts, at most SIGNATURE_MAX_LINES
    contracts: tuple[str, ...] = ()  # Ada/SPARK aspects (Pre, Post, Global, ...) and SPARK_Mode

    def __reduce__(self) -> tuple[Callable[..., Definition], tuple[object, ...]]:
        # A scan's workers send 175,000 of these for 4,000 files: the dataclass's own pickling
        # (a state dict, set field by field) cost the server a second to read them back.
        return _definition, (
            self.name,
            self.kind,
            self.start_line,
            self.end_line,
            self.signature,
            self.contracts,
        )


def _definition(
    name: str, kind: str, start_line: int, end_line: int, signature: str, contracts: tuple[str, ...]
) -> Definition:
    return Definition(
        name=name,
        kind=kind,
        start_line=start_line,
        end_line=end_line,
        signature=signature,
        contracts=contracts,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    name: str  # the imported unit as written, without quotes, brackets or a wildcard suffix
    kind: str  # one of IMPORT_KINDS
    line: int  # 0-based

    def __reduce__(self) -> tuple[Callable[..., Import], tuple[object, ...]]:
        return _import, (self.name, self.kind, self.line)


def _import(name: str, kind: str, line: int) -> Import:
    return Import(name=name, kind=kind, line=line)


def definitions(source: bytes, language: Language, tree: Tree | None = None) -> list[Definition]:
    """What `source` declares, in source order; a tree with errors yields what it recovered."""
    if tree is None:
        tree = language.parser().parse(source)
    matches = QueryCursor(language.query("definitions")).matches(tree.root_node)
    return _definitions(source, language, matches)


def imports(source: bytes, language: Language, tree: Tree | None = None) -> list[Import]:
    """The units `source` depends on (`with`, `use`, `import`, `#include`), in source order."""
    if tree is None:
        tree = language.parser().parse(source)
    return _imports(source, QueryCursor(language.query("imports")).matches(tree.root_node))


def symbols(
    source: bytes, language: Language, tree: Tree | None = None
) -> tuple[list[Definition], list[Import]]:
    """`definitions` and `imports` from one walk of the tree (a scan wants both: the walk costs
    as much as the matching)."""
    if tree is None:
        tree = language.parser().parse(source)
    matches = QueryCursor(language.query("symbols")).matches(tree.root_node)
    return _definitions(source, language, matches), _imports(source, matches)


Match = tuple[int, dict[str, list[Node]]]


def _definitions(source: bytes, language: Language, matches: list[Match]) -> list[Definition]:
    # One definition per name node: the widest declaration, then the earliest pattern, then the
    # earliest signature end wins. Where a signature ends is worked out only for a tie.
    found: dict[tuple[int, int], list] = {}  # [rank, kind, node, name, captures, end | None]
    for pattern, captures in matches:
        kind, node = _definition_capture(captures)
        if node is None:
            continue
        rank = (node.start_byte - node.end_byte, pattern)
        end: int | None = None
        for name in captures.get("name", ()):
            key = (name.start_byte, name.end_byte)
            held = found.get(key)
            if held is not None and rank >= held[0]:
                if rank > held[0]:
                    continue
                if end is None:
                    end = _signature_end(node, captures)
                if held[5] is None:
                    held[5] = _signature_end(held[2], held[4])
                if end >= held[5]:
                    continue
            found[key] = [rank, kind, node, name, captures, end]
    contracts = _CONTRACTS.get(language.queries or language.name)
    result = []
    for _, kind, node, name, captures, end in sorted(
        found.values(), key=lambda f: (f[2].start_byte, f[3].start_byte)
    ):
        result.append(
            Definition(
                name=_text(source, name),
                kind=kind,
                start_line=node.start_point.row,
                end_line=_end_line(node),
                signature=_signature(
                    source, node, _signature_end(node, captures) if end is None else end
                ),
                contracts=contracts(source, node) if contracts else (),
            )
        )
    return result


def _imports(source: bytes, matches: list[Match]) -> list[Import]:
    found: dict[tuple[int, int], Import] = {}  # a node captured twice: its first capture
    for _, captures in matches:
        for capture, nodes in captures.items():
            if not capture.startswith("import."):
                continue
            kind = capture.removeprefix("import.")
            for node in nodes:
                name = _import_name(_text(source, node))
                if name:
                    found.setdefault(
                        (node.start_byte, node.end_byte),
                        Import(name=name, kind=kind, line=node.start_point.row),
                    )
    return [found[key] for key in sorted(found)]


def _definition_capture(captures: dict[str, list[Node]]) -> tuple[str, Node | None]:
    for capture, nodes in captures.items():
        if capture.startswith("definition.") and nodes:
            return capture.removeprefix("definition."), nodes[0]
    return "", None


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _end_line(node: Node) -> int:
    # A node that takes its line's newline (a C `#define`) ends at column 0 of the next line.
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _signature_end(node: Node, captures: dict[str, list[Node]]) -> int:
    """Where the signature stops: after `@signature`, before `@body`, else the declaration's end."""
    ends = [n.end_byte for n in captures.get("signature", ())]
    ends += [n.start_byte for n in captures.get("body", ()) if n.start_byte > node.start_byte]
    return min(ends, default=node.end_byte)


def _signature(source: bytes, node: Node, end: int) -> str:
    text = source[node.start_byte : end].decode("utf-8", errors="replace")
    return "\n".join(text.rstrip().splitlines()[:SIGNATURE_MAX_LINES])


def _import_name(text: str) -> str:
    name = _WS.sub(" ", text).strip().strip("\"'`<>").strip()
    return _WILDCARD.sub("", name)


# Ada and SPARK: contracts are aspects on the declaration (`with Pre => ..., Global => ...`), and
# SPARK_Mode is an aspect or a pragma (inside the unit, or before it as a configuration pragma).
_ADA_GENERIC_WRAPPERS = frozenset({"generic_package_declaration", "generic_subprogram_declaration"})
_ADA_DECLARATIVE_PARTS = frozenset({"non_empty_declarative_part", "declarative_part"})
_ADA_UNIT_PRELUDE = frozenset({"pragma_g", "with_clause", "use_clause", "comment"})
_SPARK_MODE = re.compile(rb"spark_mode", re.IGNORECASE)


def ada_contracts(source: bytes, node: Node) -> tuple[str, ...]:
    found: list[str] = []
    for child in _ada_parts(node):
        if child.type == "aspect_specification":
            for mark_list in child.named_children:
                if mark_list.type != "aspect_mark_list":
                    continue
                for aspect in mark_list.named_children:
                    if aspect.type == "aspect_association":
                        found.append(_WS.sub(" ", _text(source, aspect)).strip())
    for pragma in _ada_spark_mode_pragmas(source, node):
        found.append(_ada_pragma_as_aspect(source, pragma))
    return tuple(found)


def _ada_parts(node: Node) -> list[Node]:
    """The declaration's own children, looking through `generic ...` to what it declares."""
    parts: list[Node] = []
    for child in node.named_children:
        parts.append(child)
        if node.type in _ADA_GENERIC_WRAPPERS:
            parts.extend(child.named_children)
    return parts


def _ada_spark_mode_pragmas(source: bytes, node: Node) -> list[Node]:
    # A pragma's name is in the text as written (Ada ignores only its case): where the
    # declaration's text does not hold the word, its nodes are not looked at (most hold none).
    pragmas: list[Node] = []
    # Inside the unit: `package body P is pragma SPARK_Mode (On); ...`.
    if _SPARK_MODE.search(source, node.start_byte, node.end_byte):
        for child in node.named_children:
            candidates = child.named_children if child.type in _ADA_DECLARATIVE_PARTS else [child]
            pragmas.extend(p for p in candidates if _is_spark_mode_pragma(p))
    # Before a library unit: `pragma SPARK_Mode (On); with X; package P is ...`.
    unit = node.parent
    if unit is not None and unit.type == "compilation_unit":
        previous = unit.prev_named_sibling
        while previous is not None and previous.type in ("compilation_unit", "comment"):
            items = previous.named_children
            if previous.type == "compilation_unit" and not all(
                item.type in _ADA_UNIT_PRELUDE for item in items
            ):
                break
            pragmas.extend(p for p in items if _is_spark_mode_pragma(p))
            previous = previous.prev_named_sibling
    return pragmas


def _is_spark_mode_pragma(node: Node) -> bool:
    if node.type != "pragma_g":
        return False
    name = node.named_children[0] if node.named_children else None
    return name is not None and (name.text or b"").lower() == b"spark_mode"


def _ada_pragma_as_aspect(source: bytes, pragma: Node) -> str:
    """`pragma SPARK_Mode (Off);` reads as the aspect `SPARK_Mode => Off`."""
    name = pragma.named_children[0]
    args = [c for c in pragma.named_children[1:] if c.type == "pragma_argument_association"]
    value = ", ".join(_WS.sub(" ", _text(source, a)).strip() for a in args)
    return f"{_text(source, name)} => {value}" if value else _text(source, name)


_CONTRACTS: dict[str, Callable[[bytes, Node], tuple[str, ...]]] = {"ada": ada_contracts}
