"""`textDocument/documentSymbol` and `workspace/symbol`, answered from the parse and the index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types

from context.symbols import Definition, definitions

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer

KINDS = {
    "package": types.SymbolKind.Package,
    "package_body": types.SymbolKind.Package,
    "module": types.SymbolKind.Module,
    "namespace": types.SymbolKind.Namespace,
    "entity": types.SymbolKind.Interface,
    "architecture": types.SymbolKind.Class,
    "component": types.SymbolKind.Interface,
    "class": types.SymbolKind.Class,
    "struct": types.SymbolKind.Struct,
    "enum": types.SymbolKind.Enum,
    "interface": types.SymbolKind.Interface,
    "trait": types.SymbolKind.Interface,
    "type": types.SymbolKind.TypeParameter,
    "subtype": types.SymbolKind.TypeParameter,
    "function": types.SymbolKind.Function,
    "procedure": types.SymbolKind.Function,
    "subprogram": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "task": types.SymbolKind.Object,
    "protected": types.SymbolKind.Object,
    "generic": types.SymbolKind.TypeParameter,
    "signal": types.SymbolKind.Variable,
    "variable": types.SymbolKind.Variable,
    "field": types.SymbolKind.Field,
    "constant": types.SymbolKind.Constant,
    "macro": types.SymbolKind.Constant,
}


def _range(d: Definition) -> types.Range:
    return types.Range(
        start=types.Position(line=d.start_line, character=0),
        end=types.Position(line=d.end_line + 1, character=0),
    )


def _tree(defs: list[Definition]) -> list[types.DocumentSymbol]:
    """Nest each definition inside the nearest one before it whose lines contain it."""
    roots: list[types.DocumentSymbol] = []
    stack: list[tuple[Definition, types.DocumentSymbol]] = []
    for d in defs:
        sym = types.DocumentSymbol(
            name=d.name,
            detail=d.kind,
            kind=KINDS.get(d.kind, types.SymbolKind.Variable),
            range=_range(d),
            selection_range=_range(d),
            children=[],
        )
        while stack and not (
            stack[-1][0].start_line <= d.start_line <= stack[-1][0].end_line
            and d.end_line <= stack[-1][0].end_line
        ):
            stack.pop()
        (stack[-1][1].children if stack else roots).append(sym)  # type: ignore[union-attr]
        stack.append((d, sym))
    return roots


def register(server: AirgapServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(
        ls: AirgapServer, params: types.DocumentSymbolParams
    ) -> list[types.DocumentSymbol]:
        doc = ls.files.documents.get(params.text_document.uri)
        if doc is None or doc.language is None or doc.tree is None:  # no grammar, or oversized
            return []
        return _tree(definitions(doc.source, doc.language, doc.tree))

    @server.feature(types.WORKSPACE_SYMBOL)
    def workspace_symbol(
        ls: AirgapServer, params: types.WorkspaceSymbolParams
    ) -> list[types.WorkspaceSymbol]:
        return [
            types.WorkspaceSymbol(
                name=hit.definition.name,
                kind=KINDS.get(hit.definition.kind, types.SymbolKind.Variable),
                location=types.Location(
                    uri=Path(hit.entry.path).as_uri(), range=_range(hit.definition)
                ),
                container_name=ls.files.context.relative(hit.entry.path),
            )
            for hit in ls.files.index.search(params.query)
        ]
