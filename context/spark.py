"""SPARK contracts: which subprogram lacks them, and where the aspects a model proposes go.

A subprogram is under SPARK when the innermost SPARK_Mode around it (its own aspect, its
package's aspect or pragma, a configuration pragma before the unit) is on. Its contract is the
Global, Pre and Post aspects; a missing one can be proposed. The model writes aspect text; this
module reads it back into (name, expression) pairs and places it in the declaration: appended to
an existing `with` list, or as a new one after the specification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node, Tree

from context.symbols import ada_contracts
from context.units import lineage

CONTRACT_ASPECTS = ("Global", "Pre", "Post")
# What a model may propose besides those; anything else in its reply is dropped.
KNOWN_ASPECTS = frozenset(
    a.lower() for a in (*CONTRACT_ASPECTS, "Depends", "Contract_Cases", "Always_Terminates")
)
_ORDER = {a: i for i, a in enumerate(("global", "depends", "pre", "post", "contract_cases"))}
_SUBPROGRAMS = ("subprogram_declaration", "subprogram_body", "expression_function_declaration")
_SCOPES = (*_SUBPROGRAMS, "package_declaration", "package_body", "generic_package_declaration")
_SPECS = ("procedure_specification", "function_specification")
_ASPECT = re.compile(r"(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*=>", re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractTarget:
    name: str
    specification: str  # `procedure Increment (C : in out Count)`, as written
    declaration: str  # the whole declaration (a body: up to `is`), for the prompt
    present: tuple[str, ...]  # the aspects it has already, as written (`Post => ...`)
    missing: tuple[str, ...]  # which of Global, Pre, Post it lacks
    insert_byte: int  # where new aspects go
    appends: bool  # True: after an existing aspect list (", X => ..."); False: a new `with`
    indent: str  # the indentation of the `with` line


def _spark_mode(source: bytes, node: Node) -> bool | None:
    """What this node says of SPARK_Mode itself: on, off, or nothing."""
    for aspect in ada_contracts(source, node):
        name, _, value = aspect.partition("=>")
        if name.strip().lower() == "spark_mode":
            return value.strip().lower() != "off"
    return None


def under_spark(source: bytes, chain: list[Node]) -> bool:
    """Whether SPARK_Mode is on for the innermost of `chain` (a node and its holders, innermost
    first): the nearest scope that says so decides."""
    for at in chain:
        if at.type in _SCOPES and (mode := _spark_mode(source, at)) is not None:
            return mode
    return False


def contract_target(tree: Tree, source: bytes, offset: int) -> ContractTarget | None:
    """The SPARK subprogram around byte `offset` that lacks Global, Pre or Post, if any."""
    inner = tree.root_node.named_descendant_for_byte_range(offset, offset)
    chain = lineage(tree, inner) if inner is not None else []
    at = next((i for i, n in enumerate(chain) if n.type in _SUBPROGRAMS), None)
    if at is None or not under_spark(source, chain[at:]):
        return None
    node = chain[at]
    spec = next((c for c in node.named_children if c.type in _SPECS), None)
    if spec is None:
        return None
    aspects = next((c for c in node.named_children if c.type == "aspect_specification"), None)
    present = tuple(
        a for a in ada_contracts(source, node) if not a.lower().startswith("spark_mode")
    )
    have = {a.partition("=>")[0].strip().lower() for a in present}
    missing = tuple(a for a in CONTRACT_ASPECTS if a.lower() not in have)
    if not missing:
        return None
    line_start = source.rfind(b"\n", 0, node.start_byte) + 1
    indent = source[line_start : node.start_byte].decode("utf-8", "replace")
    indent = indent + "  " if not indent.strip() else "  "
    if aspects is not None:
        insert, appends = aspects.end_byte, True
    else:
        insert, appends = spec.end_byte, False
    is_body = node.type == "subprogram_body"
    declaration_end = spec.end_byte if is_body else node.end_byte
    if is_body and aspects is not None:
        declaration_end = aspects.end_byte
    name = spec.child_by_field_name("name") or next(
        (c for c in spec.named_children if c.type in ("identifier", "selected_component")), None
    )
    return ContractTarget(
        name=_text(source, name) if name is not None else "",
        specification=_text(source, spec),
        declaration=_text(source, node)[: declaration_end - node.start_byte],
        present=present,
        missing=missing,
        insert_byte=insert,
        appends=appends,
        indent=indent,
    )


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _split_top_level(text: str) -> list[str]:
    """`A => (x, y), B => z` split at the commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_aspects(reply: str) -> list[tuple[str, str]]:
    """The `Name => expression` pairs of a model's reply, in order; unknown aspects dropped.

    The reply is what follows `with ` in the declaration, up to (not including) the `;` or `is`.
    """
    text = re.sub(r"--[^\n]*", " ", reply).strip().removeprefix("with").strip()  # no comments
    pairs: list[tuple[str, str]] = []
    for part in _split_top_level(text):
        name, arrow, expression = part.partition("=>")
        name, expression = name.strip(), " ".join(expression.split())
        if not arrow or not expression or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        if name.lower() in KNOWN_ASPECTS:
            pairs.append((name, expression))
    return pairs


def aspects_edit(target: ContractTarget, aspects: list[tuple[str, str]]) -> tuple[int, str]:
    """The insertion (byte offset, text) that adds `aspects` to the target's declaration;
    aspects it has already are left out."""
    have = {a.partition("=>")[0].strip().lower() for a in target.present}
    new: list[tuple[str, str]] = []
    for name, expression in aspects:  # the first of each name, in the usual order
        if name.lower() not in have:
            have.add(name.lower())
            new.append((name, expression))
    new.sort(key=lambda a: _ORDER.get(a[0].lower(), len(_ORDER)))
    if not new:
        return target.insert_byte, ""
    cont = target.indent + "     "
    lines = [f"{n} => {e}" for n, e in new]
    if target.appends:
        text = "".join(f",\n{cont}{line}" for line in lines)
    else:
        text = f"\n{target.indent}with " + f",\n{cont}".join(lines)
    return target.insert_byte, text
