"""`textDocument/hover`: what the index knows of a name at once, then the model's explanation.

A name the index does not hold is looked up in the open document itself: the index may not have
read it yet, or may never (a file outside the workspace). While the index is still being built
the hover says so, since a declaration elsewhere may be missing.

The explanation is cached by the sha256 of the prompt it comes from, so a second hover over the
same declaration is instant and shows the first one's audit id. The hover never waits for a model
that is still loading: it says so and shows the index's part. `hover.timeBudgetMs` bounds the
prompt's render from the model's chat template, and the generation again: a template that runs
past it or past its own bounds gets the index's part and why the explanation was withheld. The
generation's budget is the setting itself, not what the render left of it: the audit line, and
so replay, must not depend on how long a render took.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from context.declarations import Declaration, find_declaration
from context.document import ParsedDocument
from context.languages import for_document
from context.text import position_at
from context.units import identifier_at
from inference.errors import ChatTemplateError
from inference.tasks import explain_task
from lsp_server.assist import render, run_task, task_record, write_audit

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer

log = logging.getLogger("airgap_lsp.hover")
CACHE_ENTRIES = 256
# The explanations of this server, newest last: prompt sha256 -> (text, audit id).
Explanations = OrderedDict[str, tuple[str, str]]
STILL_INDEXING = (
    "*The workspace index is still being built: a declaration in a file it has not read yet "
    "is not shown.*"
)


def register(server: AirgapServer) -> None:
    explanations: Explanations = OrderedDict()

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: AirgapServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        doc = ls.files.documents.get(uri)
        fs_path = to_fs_path(uri)
        if doc is None or fs_path is None:
            return None
        path = Path(fs_path).resolve()
        if ls.files.index.is_excluded(path):
            return None
        pos = params.position
        found = identifier_at(doc.tree, doc.source, doc.byte_offset(pos.line, pos.character))
        if found is None:
            return None
        name, start, end = found
        await ls.files.refresh_index(uri)
        decl = await declared(ls, uri, doc, name, path, pos.line)
        if decl is None:
            return None
        parts = [known(decl) + (f"\n\n{STILL_INDEXING}" if ls.files.index_building else "")]
        if ls.settings.hover_explain:
            parts.append(await explanation(ls, explanations, uri, doc, decl, pos))
        return types.Hover(
            contents=types.MarkupContent(
                kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)
            ),
            range=types.Range(
                start=types.Position(*position_at(doc.source, start)),
                end=types.Position(*position_at(doc.source, end)),
            ),
        )


async def declared(
    ls: AirgapServer, uri: str, doc: ParsedDocument, name: str, path: Path, line: int
) -> Declaration | None:
    """The declaration of `name` for a use at `line`. The index's, where it holds the editor's
    text of the document; else the document's own declarations compete with the index's from
    the other files (the index is still being built, or does not take the file), read off the
    event loop."""
    relative = ls.files.context.relative
    if ls.files.holds(uri, doc.version, path):
        return find_declaration(ls.files.index, name, path, line, relative)
    return await asyncio.to_thread(
        find_declaration, ls.files.index, name, path, line, relative, doc
    )


def known(decl: Declaration) -> str:
    """The declaration as it is known: signature, contract, doc comment, place."""
    lines = [f"```{decl.language}\n{decl.signature.rstrip()}\n```"]
    if decl.contracts:
        lines.append("**Contract:** " + "; ".join(f"`{c}`" for c in decl.contracts))
    if decl.doc:
        lines.append(decl.doc)
    lines.append(f"*{decl.kind} `{decl.name}`, {decl.path}:{decl.line + 1}*")
    return "\n\n".join(lines)


async def explanation(
    ls: AirgapServer,
    explanations: Explanations,
    uri: str,
    doc: ParsedDocument,
    decl: Declaration,
    pos: types.Position,
) -> str:
    engine = ls.model.now()
    if isinstance(engine, str):
        return f"*No explanation: {engine}.*"
    lang = for_document(decl.absolute, decl.language)  # a file's suffix may not say it
    task = explain_task(
        decl.language,
        decl.text,
        comment=lang.line_comment if lang else "",
        subject=decl.name,
        context=decl.doc,
    )
    info = engine.info
    s = ls.settings
    budget = s.hover_time_budget_ms / 1000
    try:
        rendered = await render(engine, task, budget)
    except ChatTemplateError as exc:
        log.warning("hover over %s: explanation withheld: %s", decl.name, exc)
        return f"*Explanation withheld: {exc}*"
    key = hashlib.sha256(f"{info.manifest_sha256}\0{rendered.prompt}".encode()).hexdigest()
    cached = explanations.get(key)
    if cached is None:
        run = await run_task(
            ls,
            engine,
            task,
            max_new_tokens=s.hover_max_tokens,
            max_seconds=budget,
            rendered=rendered,
        )
        text = run.generation.text.rstrip()
        record = task_record(
            ls,
            run,
            kind="hover",
            uri=uri,
            position={"line": pos.line, "character": pos.character},
            language=doc.language.name if doc.language else "plaintext",
            engine=engine,
            text=text,
            sources=[
                {
                    "path": decl.path,
                    "lines": [decl.line, decl.line + decl.text.count("\n")],
                    "sha256": decl.sha256,
                }
            ],
            result={"subject": decl.name, "declared_at": f"{decl.path}:{decl.line + 1}"},
        )
        await write_audit(ls, record, engine)
        log.info(
            "hover %s: %d tokens, %s",
            record.id,
            run.generation.new_tokens,
            run.generation.stop_reason,
        )
        cached = (text, record.id)
        explanations[key] = cached
        while len(explanations) > CACHE_ENTRIES:
            explanations.popitem(last=False)
    text, audit_id = cached
    body = text.strip() or "*The model wrote no explanation.*"
    return f"{body}\n\n*Explained by {info.name}@{info.version} · audit id `{audit_id}`*"
