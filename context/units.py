"""Where a code action applies and whether a proposed edit still parses.

The unit under the cursor (the subprogram, process or function a refactor rewrites), the identifier
under it (what a hover explains), and the parse check every model-written edit must pass before an
editor may offer it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tree_sitter import Node, Tree

from context.languages import Language

# Node types a refactor or an explanation may target, innermost first wins. Types a grammar does
# not have are ignored, so one list serves the Verilog and SystemVerilog grammars alike.
UNIT_TYPES: dict[str, tuple[str, ...]] = {
    "ada": ("subprogram_body", "expression_function_declaration", "subprogram_declaration"),
    "vhdl": ("process_statement", "subprogram_definition", "subprogram_body"),
    "verilog": ("function_declaration", "task_declaration", "always_construct"),
    "systemverilog": ("function_declaration", "task_declaration", "always_construct"),
    "c": ("function_definition",),
    "cpp": ("function_definition",),
    "python": ("function_definition", "class_definition"),
    "rust": ("function_item",),
    "go": ("function_declaration", "method_declaration"),
    "java": ("method_declaration", "constructor_declaration"),
    "javascript": ("function_declaration", "method_definition", "arrow_function"),
    "typescript": ("function_declaration", "method_definition", "arrow_function"),
}
_WORD = re.compile(r"[^\W\d]\w*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """A part of a document: UTF-8 byte offsets and tree-sitter points (row, byte column)."""

    kind: str
    start_byte: int
    end_byte: int
    start_point: tuple[int, int]
    end_point: tuple[int, int]

    @classmethod
    def of(cls, node: Node) -> Span:
        return cls(
            kind=node.type,
            start_byte=node.start_byte,
            end_byte=node.end_byte,
            start_point=(node.start_point.row, node.start_point.column),
            end_point=(node.end_point.row, node.end_point.column),
        )


def unit_types(language: Language) -> tuple[str, ...]:
    grammar = language.grammar()
    wanted = UNIT_TYPES.get(language.queries or language.name, ())
    return tuple(t for t in wanted if grammar.id_for_node_kind(t, True))


def lineage(tree: Tree, node: Node) -> list[Node]:
    """`node` and every node that holds it, innermost first. Found from the root down:
    `Node.parent` costs as much as the node is deep, so walking up would be quadratic in code
    nested thousands deep."""
    chain: list[Node] = []
    at: Node | None = tree.root_node
    while at is not None and at != node:
        chain.append(at)
        at = at.child_with_descendant(node)
    chain.append(node)
    return chain[::-1]


def enclosing_unit(
    tree: Tree, language: Language, start: int, end: int | None = None
) -> Span | None:
    """The innermost subprogram, process or function that holds bytes `start`..`end`."""
    end = start if end is None else end
    types = unit_types(language)
    inner = tree.root_node.named_descendant_for_byte_range(start, max(start, end))
    if inner is None:
        return None
    chain = lineage(tree, inner)
    for i, node in enumerate(chain):
        if node.type in types and node.start_byte <= start and end <= node.end_byte:
            # A Python decorator belongs to the function it decorates.
            if i + 1 < len(chain) and chain[i + 1].type == "decorated_definition":
                node = chain[i + 1]
            return Span.of(node)
    return None


def identifier_at(tree: Tree | None, source: bytes, offset: int) -> tuple[str, int, int] | None:
    """The identifier that touches byte `offset`: (name, start byte, end byte), or None.

    Without a tree (a language with no grammar) a word of letters, digits and underscores counts.
    """
    if tree is not None:
        for at in (offset, offset - 1):
            if at < 0:
                continue
            node = tree.root_node.named_descendant_for_byte_range(at, at)
            if node is not None and node.child_count == 0 and node.type.endswith("identifier"):
                return (
                    source[node.start_byte : node.end_byte].decode("utf-8", "replace"),
                    (node.start_byte),
                    node.end_byte,
                )
        return None
    line_start = source.rfind(b"\n", 0, offset) + 1
    line_end = source.find(b"\n", offset)
    line = source[line_start : line_end if line_end >= 0 else len(source)].decode(
        "utf-8", "replace"
    )
    column = len(source[line_start:offset].decode("utf-8", "replace"))
    for match in _WORD.finditer(line):
        if match.start() <= column <= match.end():
            head = len(line[: match.start()].encode())
            return match.group(), line_start + head, line_start + head + len(match.group().encode())
    return None


def _errors(node: Node, start: int, end: int) -> Iterator[Node]:
    """ERROR and MISSING nodes that overlap bytes start..end, in document order. A loop, not
    recursion: code can nest deeper than Python's stack."""
    stack = [node]
    while stack:
        node = stack.pop()
        if node.end_byte < start or node.start_byte > end or not node.has_error:
            continue
        if node.is_error or node.is_missing:
            yield node
            continue
        stack.extend(reversed(node.children))


def syntax_errors(tree: Tree, start: int = 0, end: int | None = None) -> list[Node]:
    return list(_errors(tree.root_node, start, tree.root_node.end_byte if end is None else end))


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseCheck:
    ok: bool
    errors_before: int
    errors_after: int
    first_error_line: int | None = None  # 0-based line of the first error after the edit


def _point(source: bytes, offset: int) -> tuple[int, int]:
    return source.count(b"\n", 0, offset), offset - (source.rfind(b"\n", 0, offset) + 1)


def check_edit(
    language: Language,
    source: bytes,
    start: int,
    end: int,
    new_text: str,
    *,
    tree: Tree | None = None,
    scope: str = "document",
) -> ParseCheck:
    """Whether replacing bytes start..end of `source` with `new_text` keeps the code parsing.

    `scope="document"`: the edit may not add a syntax error anywhere (a document that had errors
    may keep them, not gain more). `scope="block"`: only the innermost unit around the edit
    counts, and only if it parsed before: a block the user is still typing cannot be judged.
    """
    parser = language.parser()
    old = tree if tree is not None else parser.parse(source)
    inserted = new_text.encode("utf-8")
    new_source = source[:start] + inserted + source[end:]
    edited = old.copy()
    new_end = start + len(inserted)
    edited.edit(
        start_byte=start,
        old_end_byte=end,
        new_end_byte=new_end,
        start_point=_point(source, start),
        old_end_point=_point(source, end),
        new_end_point=_point(new_source, new_end),
    )
    new = parser.parse(new_source, edited)
    if scope == "block":
        unit = enclosing_unit(old, language, start, end)
        lo, hi = (unit.start_byte, unit.end_byte) if unit else (0, len(source))
        before = syntax_errors(old, lo, hi)
        after = syntax_errors(new, lo, hi + len(inserted) - (end - start))
        ok = bool(before) or not after
    else:
        before, after = syntax_errors(old), syntax_errors(new)
        ok = len(after) <= len(before)
    first = min((n.start_point.row for n in after), default=None)
    return ParseCheck(
        ok=ok, errors_before=len(before), errors_after=len(after), first_error_line=first
    )


MAX_TRIMS = 8


def parsing_prefix(
    language: Language, source: bytes, tree: Tree | None, offset: int, text: str
) -> tuple[str, str]:
    """The longest head of a completion, in whole lines, that keeps its block parsing.

    Returns (text, verdict): "ok", "trimmed N lines", "opens a block" or "withheld". A block
    that did not parse before the insertion cannot be judged and keeps the whole completion.
    Where no head parses but the first line opens a block (the language's `block_open`: `if X
    then`, `for I in R loop`, `def f(x):`), that line is kept: it cannot parse until the block
    it opens is written, which is what the user goes on to do.
    """
    lines = text.split("\n")
    for keep in range(len(lines), max(0, len(lines) - MAX_TRIMS), -1):
        candidate = "\n".join(lines[:keep]).rstrip()
        if not candidate.strip():
            break
        check = check_edit(language, source, offset, offset, candidate, tree=tree, scope="block")
        if check.ok:
            dropped = len(lines) - keep
            return candidate, "ok" if dropped == 0 else f"trimmed {dropped} lines"
    first = lines[0]
    code = first.split(language.line_comment, 1)[0] if language.line_comment else first
    if code.strip() and re.search(language.block_open, code.rstrip(), re.IGNORECASE):
        return first.rstrip(), "opens a block"
    return "", "withheld"
