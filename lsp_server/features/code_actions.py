"""`textDocument/codeAction` and `codeAction/resolve`: refactor, SPARK contracts, explain.

Listing the actions reads the tree only; the model runs in `codeAction/resolve`, for the action
the user picked. A proposed edit is reparsed before it is offered: one that brings a syntax error
comes back without an edit, and the user is told the model's proposal did not parse.
"""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from context.document import ParsedDocument
from context.spark import aspects_edit, contract_target, parse_aspects
from context.text import position_at
from context.units import check_edit, enclosing_unit
from inference.engine import Engine
from inference.errors import ChatTemplateError
from inference.tasks import (
    contracts_task,
    explain_task,
    first_aspect,
    refactor_task,
    reply_code,
)
from lsp_server.assist import TaskRun, run_task, task_record, write_audit
from lsp_server.features.accept import ACCEPT
from lsp_server.server import AirgapServer  # at run time: pygls reads the command's type hints

log = logging.getLogger("airgap_lsp.code_actions")
SHOW_EXPLANATION = "airgap.showExplanation"
EXPLAIN_KIND = types.CodeActionKind.Empty
TITLES = {
    "refactor": "Suggest a refactor",
    "spark_contracts": "Suggest SPARK contracts",
    "explain": "Explain this code",
}
KINDS = {
    "refactor": types.CodeActionKind.RefactorRewrite,
    "spark_contracts": types.CodeActionKind.RefactorRewrite,
    "explain": EXPLAIN_KIND,
}
EXPLAIN_MAX_TOKENS = 160
SURROUNDINGS_CHARS = 3000


def register(server: AirgapServer) -> None:
    options = types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.RefactorRewrite, EXPLAIN_KIND],
        resolve_provider=True,
    )

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, options)
    def code_action(
        ls: AirgapServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        doc = ls.files.documents.get(uri)
        path = to_fs_path(uri)
        if doc is None or doc.tree is None or doc.language is None or path is None:
            return None
        if ls.files.index.is_excluded(Path(path).resolve()):
            return None
        actions = [
            _listed(key, uri, doc, params.range, title)
            for key, title in available(doc, params.range)
        ]
        only = params.context.only
        if only:
            actions = [a for a in actions if any(_within(a.kind, k) for k in only)]
        return actions or None

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: AirgapServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        key, uri = data.get("action"), data.get("uri")
        rng: list[int] = data.get("range") or []
        if key not in TITLES or not isinstance(uri, str) or not _is_range(rng):
            raise JsonRpcInvalidParams("not an airgap-lsp code action (its data is missing)")
        doc = ls.files.documents.get(uri)
        if doc is None or doc.version != data.get("version"):
            ls.show_error("The document changed since the action was listed: ask again.")
            return action
        engine = await ls.model.engine()
        try:
            if key == "spark_contracts":
                return await _contracts(ls, engine, action, uri, doc, rng)
            if key == "refactor":
                return await _refactor(ls, engine, action, uri, doc, rng)
            return await _explain(ls, engine, action, uri, doc, rng)
        except ChatTemplateError as exc:  # nothing was generated: the action stays as listed
            ls.show_error(f"airgap-lsp: {TITLES[key].lower()}: {exc}")
            return action

    @server.command(SHOW_EXPLANATION)
    def show_explanation(ls: AirgapServer, shown: dict[str, Any]) -> dict[str, Any]:
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Info,
                message=f"{shown.get('text', '')}\n\n({shown.get('model', '')}, audit id "
                f"{shown.get('id', '')})",
            )
        )
        return shown


def available(doc: ParsedDocument, rng: types.Range) -> list[tuple[str, str]]:
    """The actions that apply to a range, as (key, title); nothing runs the model here."""
    assert doc.tree is not None and doc.language is not None
    start = doc.byte_offset(rng.start.line, rng.start.character)
    end = doc.byte_offset(rng.end.line, rng.end.character)
    found: list[tuple[str, str]] = []
    if end > start or enclosing_unit(doc.tree, doc.language, start) is not None:
        found += [("refactor", TITLES["refactor"]), ("explain", TITLES["explain"])]
    if doc.language.name == "ada":
        target = contract_target(doc.tree, doc.source, start)
        if target is not None:
            found.insert(0, ("spark_contracts", f"{TITLES['spark_contracts']} for {target.name}"))
    return found


def _listed(
    key: str, uri: str, doc: ParsedDocument, rng: types.Range, title: str
) -> types.CodeAction:
    r = [rng.start.line, rng.start.character, rng.end.line, rng.end.character]
    return types.CodeAction(
        title=title,
        kind=KINDS[key],
        data={"action": key, "uri": uri, "version": doc.version, "range": r},
    )


def _within(kind: str | None, wanted: str) -> bool:
    kind = kind or ""
    return wanted == "" or kind == wanted or kind.startswith(wanted + ".")


def _is_range(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value)


def _target(doc: ParsedDocument, rng: list[int]) -> tuple[int, int]:
    """Whole lines: the selection's, or the enclosing unit's when nothing is selected."""
    assert doc.tree is not None and doc.language is not None
    source = doc.source
    start, end = doc.byte_offset(rng[0], rng[1]), doc.byte_offset(rng[2], rng[3])
    if end <= start:
        unit = enclosing_unit(doc.tree, doc.language, start)
        if unit is None:
            raise JsonRpcInvalidParams("Nothing to work on here: select some code.")
        start, end = unit.start_byte, unit.end_byte
    lo = source.rfind(b"\n", 0, start) + 1
    if end > lo and source[end - 1 : end] == b"\n":
        end -= 1  # a selection of whole lines ends at the next line's start
    hi = source.find(b"\n", end)
    if hi < 0:
        hi = len(source)
    elif hi > lo and source[hi - 1 : hi] == b"\r":
        hi -= 1  # a CRLF line's "\r" belongs to its end: an edit must not take it away
    return lo, hi


def _common_indent(code: str) -> str:
    lines = [line for line in code.splitlines() if line.strip()]
    return os.path.commonprefix([line[: len(line) - len(line.lstrip(" \t"))] for line in lines])


def _range(source: bytes, lo: int, hi: int) -> types.Range:
    return types.Range(
        start=types.Position(*position_at(source, lo)), end=types.Position(*position_at(source, hi))
    )


def _position(rng: list[int]) -> dict[str, int]:
    return {"line": rng[0], "character": rng[1]}


async def _audit(
    ls: AirgapServer,
    run: TaskRun,
    engine: Engine,
    uri: str,
    doc: ParsedDocument,
    rng: list[int],
    result: dict[str, Any],
) -> str:
    record = task_record(
        ls,
        run,
        kind=f"code_action.{run.task.kind}",
        uri=uri,
        position=_position(rng),
        language=doc.language.name if doc.language else "plaintext",
        engine=engine,
        text=run.generation.text.rstrip(),
        result=result,
    )
    await write_audit(ls, record, engine)
    log.info("%s %s: %s", record.kind, record.id, result.get("outcome", ""))
    return record.id


def _offer(
    ls: AirgapServer, action: types.CodeAction, uri: str, edit: types.TextEdit, audit_id: str
) -> types.CodeAction:
    action.edit = types.WorkspaceEdit(changes={uri: [edit]})
    # The editor runs the command after applying the edit: the accept reaches the audit log.
    action.command = types.Command(title="Accepted", command=ACCEPT, arguments=[audit_id])
    ls.ledger.offer(audit_id, uri)
    return action


def _refuse(ls: AirgapServer, what: str, why: str, audit_id: str) -> None:
    message = f"airgap-lsp: {why}; nothing was changed (audit id {audit_id})."
    log.warning("%s: %s", what, message)
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))


async def _refactor(
    ls: AirgapServer,
    engine: Engine,
    action: types.CodeAction,
    uri: str,
    doc: ParsedDocument,
    rng: list[int],
) -> types.CodeAction:
    assert doc.language is not None
    lo, hi = _target(doc, rng)
    code = doc.source[lo:hi].decode("utf-8", "replace")
    dedented = textwrap.dedent(code)
    indent = _common_indent(code)
    lang = doc.language
    task = refactor_task(lang.name, dedented, comment=lang.line_comment)
    budget = min(ls.settings.code_action_max_tokens, 2 * engine.count_tokens(dedented) + 32)
    run = await run_task(ls, engine, task, max_new_tokens=budget)
    proposal = reply_code(run.generation.text)
    new = textwrap.indent(textwrap.dedent(proposal), indent).rstrip("\n")
    replaced = _range(doc.source, lo, hi)
    result: dict[str, Any] = {
        "range": [
            replaced.start.line,
            replaced.start.character,
            replaced.end.line,
            replaced.end.character,
        ],
        "new_text": new,
    }
    if not new.strip() or new.strip() == code.strip():
        result["outcome"] = "no change proposed"
        audit_id = await _audit(ls, run, engine, uri, doc, rng, result)
        _refuse(ls, "refactor", "the model proposed no change", audit_id)
        return action
    check = check_edit(lang, doc.source, lo, hi, new, tree=doc.tree)
    result.update(
        parses=check.ok, errors_before=check.errors_before, errors_after=check.errors_after
    )
    result["outcome"] = "offered" if check.ok else "withheld: does not parse"
    audit_id = await _audit(ls, run, engine, uri, doc, rng, result)
    if not check.ok:
        line = "" if check.first_error_line is None else f" (line {check.first_error_line + 1})"
        _refuse(ls, "refactor", f"the model's proposal did not parse{line}", audit_id)
        return action
    return _offer(ls, action, uri, types.TextEdit(range=replaced, new_text=new), audit_id)


async def _contracts(
    ls: AirgapServer,
    engine: Engine,
    action: types.CodeAction,
    uri: str,
    doc: ParsedDocument,
    rng: list[int],
) -> types.CodeAction:
    assert doc.tree is not None and doc.language is not None
    target = contract_target(doc.tree, doc.source, doc.byte_offset(rng[0], rng[1]))
    if target is None:
        ls.show_error("This subprogram is not under SPARK_Mode or has its contract already.")
        return action
    before = doc.source[: target.insert_byte].decode("utf-8", "replace")
    surroundings = before[-SURROUNDINGS_CHARS:]
    task = contracts_task(
        unit=target.name,
        declaration=target.declaration,
        indent=target.indent,
        present=target.present,
        surroundings=surroundings,
    )
    run = await run_task(
        ls, engine, task, max_new_tokens=min(ls.settings.code_action_max_tokens, 160)
    )
    # The reply continues after `<first missing aspect> => `, written for the model.
    proposed = parse_aspects(f"{first_aspect(task)} => {run.generation.text}")
    # Each aspect must keep the declaration parsing; one that does not is left out.
    kept: list[tuple[str, str]] = []
    for aspect in proposed:
        at, text = aspects_edit(target, [*kept, aspect])
        if text and check_edit(doc.language, doc.source, at, at, text, tree=doc.tree).ok:
            kept.append(aspect)
    at, text = aspects_edit(target, kept)
    where = types.Position(*position_at(doc.source, at))
    result: dict[str, Any] = {
        "subject": target.name,
        "range": [where.line, where.character, where.line, where.character],
        "new_text": text,
        "aspects": [n for n, _ in kept],
        "proposed": [f"{n} => {e}" for n, e in proposed],
    }
    if not proposed:
        result["outcome"] = "no contract aspects proposed"
        audit_id = await _audit(ls, run, engine, uri, doc, rng, result)
        _refuse(ls, "contracts", "the model proposed no contract aspects", audit_id)
        return action
    if not text:
        result["outcome"] = "withheld: does not parse"
        audit_id = await _audit(ls, run, engine, uri, doc, rng, result)
        _refuse(ls, "contracts", "the model's proposed contract did not parse", audit_id)
        return action
    result["outcome"] = "offered"
    audit_id = await _audit(ls, run, engine, uri, doc, rng, result)
    edit = types.TextEdit(range=types.Range(start=where, end=where), new_text=text)
    return _offer(ls, action, uri, edit, audit_id)


async def _explain(
    ls: AirgapServer,
    engine: Engine,
    action: types.CodeAction,
    uri: str,
    doc: ParsedDocument,
    rng: list[int],
) -> types.CodeAction:
    assert doc.language is not None
    lo, hi = _target(doc, rng)
    code = textwrap.dedent(doc.source[lo:hi].decode("utf-8", "replace"))
    lang = doc.language
    task = explain_task(lang.name, code, comment=lang.line_comment)
    run = await run_task(ls, engine, task, max_new_tokens=EXPLAIN_MAX_TOKENS)
    text = run.generation.text.strip()
    audit_id = await _audit(ls, run, engine, uri, doc, rng, {"outcome": "shown"})
    info = engine.info
    shown = {"id": audit_id, "text": text, "model": f"{info.name}@{info.version}"}
    action.command = types.Command(
        title="Show the explanation", command=SHOW_EXPLANATION, arguments=[shown]
    )
    return action
