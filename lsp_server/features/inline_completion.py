"""`textDocument/inlineCompletion` (LSP 3.18): the ghost text at the cursor."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcRequestCancelled
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from airgap_lsp.errors import AirgapError
from airgap_lsp.settings import Settings
from audit.record import AuditRecord, new_record, renewed
from context.document import ParsedDocument
from context.languages import for_document
from context.prompt import Prompt, build_prompt, strip_forced, suggestion_text, wants_block
from context.retrieval import ContextRequest
from context.text import offset_at, printable
from context.units import parsing_prefix
from inference.engine import Engine, Generation, GenerationRequest
from inference.errors import GenerationCancelled
from inference.healing import heal, refused_start
from inference.prompt_format import FORMATS, render
from inference.stops import PIECE_REPEATS, StopRule, block_indent
from lsp_server.assist import NOT_SENT, model_fields, timing_fields, write_audit
from lsp_server.client import following
from lsp_server.features.accept import ACCEPT

if TYPE_CHECKING:
    from tree_sitter import Tree

    from context.languages import Language
    from lsp_server.server import AirgapServer

log = logging.getLogger("airgap_lsp.completion")
STATS = "airgap.completionStats"  # workspace/executeCommand: what the typing path cost so far
CANCELLED = "cancelled: superseded by a newer request, or cancelled by the editor"
OPEN_DOCUMENTS = 8  # the most recent other open documents the context reads
WINDOW_SLACK_BYTES = 4096  # beyond the prompt's cut: the lines around the cursor the context reads
WINDOW_STEP_BYTES = 4096  # an oversized document's window starts at a multiple of this
# Where the parse check withholds a suggestion, the model is asked again this many times, each
# time refused the starts it wrote before (300 positions of the quality benchmark, context off:
# empty answers 36 -> 16), while the request has taken less than ASK_AGAIN_WITHIN_S seconds: the
# model worker is held meanwhile, and a user who waited that long has typed on.
ASK_AGAIN = 2
ASK_AGAIN_WITHIN_S = 3.0


class Completions:
    """This feature's state in one server: the generation in flight for each document (its
    cancel flag), each document's last suggestion (whose rest is served while it is typed), and
    what the typing path cost so far."""

    def __init__(self) -> None:
        self.inflight: dict[str, threading.Event] = {}  # document uri -> cancel flag
        # document uri -> when its last request came (time.monotonic()): a request that
        # follows another by less than the debounce is part of a burst of typing.
        self.arrived: dict[str, float] = {}
        self.last_shown: dict[str, Shown] = {}
        self.stats = dict.fromkeys(
            (
                "requested",
                "debounced",
                "generations",
                "generations_cancelled",
                "generations_failed",
                "generations_finished",
                "stale",
                "served_typed_on",
                "asked_again",
                "wrote_nothing",
                "withheld",
                "continued",
                "served_continuation",
            ),
            0,
        )

    def closed(self, uri: str) -> None:
        """The document closed: its suggestion is over, and a generation for it stops."""
        if (last := self.last_shown.pop(uri, None)) is not None and last.more is not None:
            last.more.cancel.set()
        self.arrived.pop(uri, None)
        if (cancel := self.inflight.pop(uri, None)) is not None:
            cancel.set()

    def forget(self) -> None:
        """A new model: the suggestions shown are not its own, and the rest of a block is not
        written by the old one."""
        for last in self.last_shown.values():
            if last.more is not None:
                last.more.cancel.set()
        self.last_shown.clear()

    def stop(self) -> None:
        """The session ends: generations stop between two steps."""
        for cancel in self.inflight.values():
            cancel.set()
        self.forget()


def register(server: AirgapServer) -> None:
    state = Completions()
    server.files.closed.append(state.closed)
    server.model.reloaded.append(state.forget)
    server.stopping.append(state.stop)

    @server.command(STATS)
    def completion_stats(ls: AirgapServer, *_args: object) -> dict[str, int]:
        """Requests, those a newer keystroke replaced while they waited (no model work),
        generations started, stopped by a cancel, failed, and run to their end, requests whose
        suggestion went stale before its reply (not shown), and requests answered with the
        rest of a suggestion whose start the user typed (no model work). Where no suggestion
        came: generations made again because the parse check withheld the one before
        (`asked_again`), requests where the model wrote only blanks (`wrote_nothing`), and
        requests whose every suggestion the parse check withheld (`withheld`). Blocks shown a
        statement at a time: the rests written ahead (`continued`), and those shown when their
        statement was accepted (`served_continuation`)."""
        return dict(state.stats)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: AirgapServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        uri = params.text_document.uri
        # The server's copy of the editor's text, the one hover and code actions read too.
        # pygls would read an unopened document from disk, wherever its URI points: only what
        # the editor opened is completed.
        parsed = ls.files.documents.get(uri)
        if parsed is None:  # not open, or closed while the request was on its way
            log.info("no completion in %s: the editor has not opened it", uri)
            return types.InlineCompletionList(items=[])
        doc = ls.workspace.get_text_document(uri)  # its path and language id
        path = Path(to_fs_path(uri) or doc.path).resolve()
        if ls.files.index.is_excluded(path):
            log.info("no completion in %s: the path is excluded from every prompt", path)
            return types.InlineCompletionList(items=[])
        # A newer request for the same document, or closing it, makes this one stale: the flag
        # stops its generation, and a suggestion it still makes is not shown.
        cancel = threading.Event()
        if (previous := state.inflight.get(uri)) is not None:
            previous.set()
        state.inflight[uri] = cancel
        state.stats["requested"] += 1
        now = time.monotonic()
        before = state.arrived.get(uri)
        state.arrived[uri] = now
        burst = before is not None and now - before < ls.settings.debounce_ms / 1000
        try:
            return await complete(ls, state, params, parsed, doc, path, cancel, burst)
        finally:
            if state.inflight.get(uri) is cancel:
                del state.inflight[uri]


async def complete(
    ls: AirgapServer,
    state: Completions,
    params: types.InlineCompletionParams,
    parsed: ParsedDocument,
    doc: TextDocument,
    path: Path,
    cancel: threading.Event,
    burst: bool,
) -> types.InlineCompletionList:
    """The rest of the last suggestion if the user typed its start. Else, in this order: the
    prompt at the cursor, the context (`with_context`), the generation and its parse check
    (`generate_checked`), the audit line (`publish`: on disk before the reply), the reply.

    `burst`: the request came less than the debounce after the one before it for the same
    document (the user is typing fast): it waits the debounce for the next keystroke first. The
    first request after a pause starts at once; a newer one stops its generation between two
    steps, and what it read stays in the key/value cache for the next prompt."""
    uri = params.text_document.uri
    arrived = time.perf_counter()
    text, at, cursor_line, place = cursor_text(parsed, params.position, ls.settings)
    stats = state.stats
    before, after = text[:at], text[at:]
    if (last := state.last_shown.get(uri)) is not None:
        if last.more is not None and (
            served := await serve_continuation(
                ls, state, params, parsed, last, before, after, cancel
            )
        ):
            return served
        if served := await serve_typed_on(ls, state, params, last, before, after, cancel):
            return served
        if cancel.is_set():  # replaced while it waited for the rest of a block
            raise JsonRpcRequestCancelled(CANCELLED)
        if last.more is not None:
            last.more.cancel.set()  # the user wrote something else: the worker is wanted
    lang = for_document(doc.path, doc.language_id)
    s = ls.settings
    prompt = build_prompt(
        text,
        at,
        path=ls.files.context.relative(path),
        language=lang.name if lang else (doc.language_id or "plaintext"),
        max_prefix_chars=s.max_prefix_chars,
        max_suffix_chars=s.max_suffix_chars,
    )
    # The tree as it is now: the parse check judges the suggestion against this text.
    parse_base = None
    if parsed.tree is not None and parsed.language is not None:
        at_byte = parsed.byte_offset(params.position.line, params.position.character)
        parse_base = (parsed.language, parsed.source, parsed.tree, at_byte)
    steps: dict[str, float] = {}  # what each step before the generation took, in ms
    try:
        steps["debounce_ms"] = 0.0
        if burst and s.debounce_ms:
            # The user is still typing: a newer keystroke's request cancels this one before
            # the model spends anything on it.
            waited = time.perf_counter()
            await asyncio.sleep(s.debounce_ms / 1000)
            if cancel.is_set():
                stats["debounced"] += 1
                raise GenerationCancelled("replaced by a newer request while debouncing")
            steps["debounce_ms"] = (time.perf_counter() - waited) * 1000
        engine = await ls.model.engine()
        chosen = time.perf_counter()
        if s.context_cross_file and s.context_max_tokens > 0:
            prompt = await with_context(ls, s, prompt, engine, uri, path, text, cursor_line, place)
        steps["context_ms"] = (time.perf_counter() - chosen) * 1000
        request = completion_request(prompt, engine, s)
        if not request.prompt:  # a prefix-only model at the very start: nothing to go on
            return types.InlineCompletionList(items=[])
        started = time.perf_counter()
        # An editor that sent a work-done token sees the model start on its request.
        with following(ls, params.work_done_token, "airgap-lsp: generating"):
            checked = await generate_checked(ls, state, engine, request, parse_base, cancel)
        if checked is None:
            return types.InlineCompletionList(items=[])
        gen, request, text, shown, verdict = checked
        total_ms = (time.perf_counter() - started) * 1000
        steps["server_ms"] = (time.perf_counter() - arrived) * 1000
    except (asyncio.CancelledError, GenerationCancelled) as exc:
        cancel.set()
        raise JsonRpcRequestCancelled(CANCELLED) from exc
    except AirgapError as exc:
        raise JsonRpcInternalError(f"airgap-lsp: {exc}") from exc

    record = audit_record(ls, params, prompt, request, engine, gen, shown, total_ms)
    record = replace(record, timings=record.timings | {k: round(v, 1) for k, v in steps.items()})
    result = {"parse_check": verdict}
    if shown != text:
        result["model_text"] = text  # what replay reproduces; the line's text was shown
    record = replace(record, result=result)
    await publish(ls, state, record, engine, cancel)
    log.info("suggestion %s: %d tokens, %s", record.id, gen.new_tokens, gen.stop_reason)
    more = None
    if gen.stop_reason == "end_of_statement" and shown == text:
        more = Continuation.start(ls, engine, prompt, request, gen)
        state.stats["continued"] += 1
    state.last_shown[uri] = Shown(
        before=before, after=after, text=shown, record=record, settings=s, more=more
    )
    return shown_item(params.position, shown, record.id)


async def with_context(
    ls: AirgapServer,
    s: Settings,
    prompt: Prompt,
    engine: Engine,
    uri: str,
    path: Path,
    text: str,
    cursor_line: int,
    place: tuple[int, int] | None = None,
) -> Prompt:
    """The prompt with the workspace's code that helps, under the token budget.

    The index holds the editor's text of the open documents, unsaved edits too: the context is
    chosen from it (a document changed since the last request is parsed again; the others cost
    a look-up). `s`: the settings the request started with, the same for all its steps.
    `place`: where `text` is an oversized document's window, the cursor's line and the line
    count of the whole document (ContextRequest.place)."""
    others = [u for u in reversed(ls.files.documents) if u != uri][:OPEN_DOCUMENTS]
    for u in (uri, *others):
        await ls.files.refresh_index(u)
    recent = tuple(
        (Path(p), printable(d.text))
        for u in others
        if (d := ls.files.documents.get(u)) is not None and not d.oversized and (p := to_fs_path(u))
    )
    request = ContextRequest(
        path=path,
        text=text,
        cursor_line=cursor_line,
        budget_tokens=s.context_max_tokens,
        recent=recent,
        keep_lines=s.context_keep_lines,
        place=place,
    )
    snippets = await asyncio.to_thread(ls.files.context.build, request, engine.count_tokens)
    return replace(prompt, snippets=snippets)


async def generate_checked(
    ls: AirgapServer,
    state: Completions,
    engine: Engine,
    request: GenerationRequest,
    parse_base: tuple[Language, bytes, Tree, int] | None,
    cancel: threading.Event,
) -> tuple[Generation, GenerationRequest, str, str, str] | None:
    """Generate, then check the suggestion against the parse: (the generation, the request it
    answered, the model's text, the text to show, the check's verdict), or None when there is
    nothing to show (the model wrote only blanks, or every suggestion broke the parse)."""
    stats = state.stats
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    for asked in range(1 + ASK_AGAIN):
        stats["generations"] += 1
        if asked:
            stats["asked_again"] += 1
        ls.model.preempt()
        try:
            gen = await loop.run_in_executor(ls.model.worker, engine.generate, request, cancel)
        except (asyncio.CancelledError, GenerationCancelled):
            stats["generations_cancelled"] += 1
            raise
        except AirgapError:
            stats["generations_failed"] += 1
            raise
        stats["generations_finished"] += 1
        text = suggestion_text(gen.text, request.forced_prefix)
        if not text.strip():
            stats["wrote_nothing"] += 1
            log.info("no suggestion: the model wrote %r (%s)", gen.text, gen.stop_reason)
            return None
        if parse_base is None:
            return gen, request, text, text, "not checked"
        # A suggestion that would break the parse of a block that parsed is cut back to the
        # lines that keep it parsing, or not shown at all.
        shown, verdict = await asyncio.to_thread(parsing_prefix, *parse_base, text)
        if verdict != "withheld":
            return gen, request, text, shown, verdict
        log.info("suggestion withheld: it breaks the parse of its block: %r", text)
        if cancel.is_set():
            raise GenerationCancelled("replaced by a newer request")
        if asked == ASK_AGAIN or time.perf_counter() - started > ASK_AGAIN_WITHIN_S:
            stats["withheld"] += 1
            return None
        # Asked again, the model may not start as it did: another suggestion, not the same one
        # (greedy decoding would write it again).
        refused = strip_forced(gen.text, request.forced_prefix)
        request = replace(request, refuse_first=(*request.refuse_first, refused))
    raise AssertionError("unreachable: the last ask returns")


def cursor_text(
    parsed: ParsedDocument, pos: types.Position, settings: Settings
) -> tuple[str, int, int, tuple[int, int] | None]:
    """What a completion reads: a text, the cursor's offset in it, the cursor's line in it, and,
    where the text is a window of the document, the cursor's line and the line count in the
    whole document (ContextRequest.place: how far the cursor went; None: those of the text).

    The whole document; for an oversized one, a window around the cursor that holds what the
    prompt keeps (a character is at most 4 bytes) and the lines the context looks at, so that
    nothing scales with the document's size. The window's start is a multiple of
    WINDOW_STEP_BYTES, so it moves at most once per step of text written before the cursor
    rather than with every line, and the prompt's start with it."""
    if not parsed.oversized:
        text = printable(parsed.text)
        return text, offset_at(text, pos.line, pos.character), pos.line, None
    window = parsed.window(
        pos.line,
        pos.character,
        # the rounding to a step takes at most WINDOW_STEP_BYTES: the slack stays whole
        before=4 * settings.max_prefix_chars + WINDOW_SLACK_BYTES + WINDOW_STEP_BYTES,
        after=4 * settings.max_suffix_chars + WINDOW_SLACK_BYTES,
        step=WINDOW_STEP_BYTES,
    )
    lines = parsed.line_count
    place = (min(pos.line, lines - 1), lines)  # a position past the end is at the last line's
    # printable() may merge two halves of a surrogate pair: the cursor is counted after it.
    head = printable(window.text[: window.at])
    return printable(window.text), len(head), window.line, place


async def publish(
    ls: AirgapServer,
    state: Completions,
    record: AuditRecord,
    engine: Engine,
    cancel: threading.Event,
    reason: str = "replaced",
) -> None:
    """Audit a suggestion and make it its document's shown one; `reason` is what the one it
    replaces is told. Written and flushed before the reply: nothing is shown unaudited.

    A request that went stale meanwhile (a newer keystroke's request, or the document closed)
    is not answered: the editor would show a suggestion for text that is gone. A line written
    by then gets a not-accepted event saying so.
    """
    stats = state.stats
    if cancel.is_set():
        stats["stale"] += 1
        raise JsonRpcRequestCancelled(CANCELLED)
    await write_audit(ls, record, engine)
    if cancel.is_set():
        stats["stale"] += 1
        ls.ledger.withdraw(record.id, record.file, NOT_SENT)
        raise JsonRpcRequestCancelled(CANCELLED)
    ls.ledger.replace_shown(record.file, record.id, reason)


def shown_item(pos: types.Position, text: str, suggestion_id: str) -> types.InlineCompletionList:
    """One suggestion at the cursor; accepting it runs the command that audits the accept."""
    accept = types.Command(title="Accepted", command=ACCEPT, arguments=[suggestion_id])
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=text, range=types.Range(start=pos, end=pos), command=accept
            )
        ]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Shown:
    """A document's last generated suggestion, and the text around the cursor it was made for."""

    before: str  # the document's text before the cursor
    after: str  # and after it
    text: str  # what was shown
    record: AuditRecord  # its audit line
    settings: Settings  # (a new model empties `last_shown`: it holds no engine)
    more: Continuation | None = None  # a block's first statement: the rest, being written

    def remainder(self, before: str, after: str) -> tuple[str, str] | None:
        """What is left of the suggestion once the user typed its start, and what they typed;
        None unless the document is the one it was made for with part of it typed."""
        if after != self.after or not before.startswith(self.before):
            return None
        typed = before[len(self.before) :]
        # A suggestion's lines end in \n; an editor on a CRLF file types Enter as \r\n.
        written = typed.replace("\r\n", "\n")
        if not typed or not self.text.startswith(written):
            return None
        rest = self.text[len(written) :]
        return (rest, typed) if rest.strip() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Continuation:
    """The rest of a block whose first statement was shown, written while the user reads it:
    a generation of its own, from the prompt with that statement accepted (the key/values of
    both are in the cache: it reads only the statement's tokens again). Shown, with an audit
    line of its own, when the user accepts the statement (`serve_continuation`)."""

    prompt: Prompt  # the shown statement's prompt: its language and context sources
    request: GenerationRequest
    cancel: threading.Event
    task: asyncio.Future[Generation | None]

    @classmethod
    def start(
        cls,
        ls: AirgapServer,
        engine: Engine,
        prompt: Prompt,
        request: GenerationRequest,
        gen: Generation,
    ) -> Continuation:
        after = replace(
            request,
            prompt=request.prompt + gen.text,
            forced_prefix="",
            # The rest starts where the first statement ended, on that statement's last line.
            line_before=(request.line_before + gen.text[len(request.forced_prefix) :]).rsplit(
                "\n", 1
            )[-1],
            refuse_start="",
            refuse_first=(),
            stop=replace(request.stop, statement=False),  # the rest, to the block's end
        )
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        ls.model.ahead.add(cancel)  # any request that wants the worker stops it

        async def run() -> Generation | None:
            try:
                return await loop.run_in_executor(ls.model.worker, engine.generate, after, cancel)
            except (GenerationCancelled, asyncio.CancelledError):
                return None
            except AirgapError as exc:
                log.warning("the rest of the block was not written: %s", exc)
                return None
            except Exception:  # work ahead of a request: its failure costs that work only
                log.exception("the rest of the block was not written")
                return None
            finally:
                ls.model.ahead.discard(cancel)

        return cls(prompt=prompt, request=after, cancel=cancel, task=asyncio.ensure_future(run()))


async def serve_continuation(
    ls: AirgapServer,
    state: Completions,
    params: types.InlineCompletionParams,
    parsed: ParsedDocument,
    last: Shown,
    before: str,
    after: str,
    cancel: threading.Event,
) -> types.InlineCompletionList | None:
    """The user accepted a block's first statement (typed it, or took it with Tab), perhaps a
    line break and indentation after it: the rest of the block, written meanwhile. None where
    the document is not that, or the rest is not there to show."""
    more = last.more
    assert more is not None
    if after != last.after or not before.startswith(last.before):
        return None
    # (an editor on a CRLF file types Enter as \r\n; the model may write either)
    typed = before[len(last.before) :].replace("\r\n", "\n")
    statement = last.text.replace("\r\n", "\n")
    if not typed.startswith(statement):
        return None
    past = typed[len(statement) :]
    if past.strip() and not more.task.done():
        return None  # more than a line break was written: do not wait to find out if it fits
    started = time.perf_counter()
    gen = await asyncio.shield(more.task)  # a cancelled request leaves it for the next one
    engine = ls.model.now()
    if gen is None or isinstance(engine, str) or last.settings is not ls.settings:
        return None
    model_text = suggestion_text(gen.text, "")
    written = model_text.replace("\r\n", "\n")
    if not written.startswith(past) or not (rest := written[len(past) :]).strip():
        return None
    if not past:
        rest = model_text  # all of it, as the model wrote it
    verdict = "not checked"
    if parsed.tree is not None and parsed.language is not None:
        pos = params.position
        at_byte = parsed.byte_offset(pos.line, pos.character)
        rest, verdict = await asyncio.to_thread(
            parsing_prefix, parsed.language, parsed.source, parsed.tree, at_byte, rest
        )
        if verdict == "withheld" or not rest.strip():
            return None
    total_ms = (time.perf_counter() - started) * 1000 + gen.prefill_ms + gen.decode_ms
    record = audit_record(ls, params, more.prompt, more.request, engine, gen, rest, total_ms)
    result: dict[str, str] = {"parse_check": verdict, "continues": last.record.id}
    if rest != model_text:
        result["model_text"] = model_text  # what replay reproduces: the line break was typed
        result["typed"] = past
    record = replace(record, result=result)
    await publish(ls, state, record, engine, cancel, "typed on: the rest of its block was shown")
    state.stats["served_continuation"] += 1
    log.info("suggestion %s: the rest of the block of %s", record.id, last.record.id)
    state.last_shown[params.text_document.uri] = Shown(
        before=before, after=after, text=rest, record=record, settings=last.settings
    )
    return shown_item(params.position, rest, record.id)


async def serve_typed_on(
    ls: AirgapServer,
    state: Completions,
    params: types.InlineCompletionParams,
    last: Shown,
    before: str,
    after: str,
    cancel: threading.Event,
) -> types.InlineCompletionList | None:
    """The user typed the start of the last suggestion: what is left of it, with no generation.

    Greedy decoding from the longer prompt would mostly write the same rest; this answers at
    once, from what the model wrote. Its own audit line keeps the prompt and model of the
    generation it came from, and names it (`result.served_from`); replay reproduces that
    generation. A change of settings or model, or any other edit, asks the model again.
    """
    engine = ls.model.now()
    if last.settings is not ls.settings or isinstance(engine, str):
        return None
    if (found := last.remainder(before, after)) is None:
        return None
    started = time.perf_counter()
    rest, typed = found
    origin = last.record
    pos = params.position
    record = renewed(
        origin,
        position={"line": pos.line, "character": pos.character},
        text=rest,
        timings={"total_ms": round((time.perf_counter() - started) * 1000, 1), "new_tokens": 0},
        result={
            "parse_check": origin.result.get("parse_check", "not checked"),
            "served_from": origin.id,
            "typed": typed,
            "model_text": origin.result.get("model_text", origin.text),
        },
    )
    await publish(ls, state, record, engine, cancel, "typed on: the rest was shown again")
    state.stats["served_typed_on"] += 1
    log.info("suggestion %s: the rest of %s, whose start was typed", record.id, origin.id)
    return shown_item(pos, rest, record.id)


def completion_request(prompt: Prompt, engine: Engine, settings: Settings) -> GenerationRequest:
    """The model text and stop rule for a prompt, in the model family's format. The prompt ends
    on a whole token: its last one and the blanks typed before the cursor are cut and forced as
    the generation's start (inference.healing), in every format, the same for a team server."""
    fmt = FORMATS[engine.info.prompt_format]
    lang = for_document(prompt.path, prompt.language)
    if settings.multiline == "auto":
        multiline = wants_block(prompt, lang.block_open, lang.line_comment) if lang else False
    else:
        multiline = settings.multiline == "always"
    prefix, forced = heal(prompt.prefix, prompt.trailing_ws, engine.last_token)
    return GenerationRequest(
        prompt=render(
            fmt,
            prefix=prefix,
            suffix=prompt.suffix,
            path=prompt.path,
            snippets=[(sn.path, sn.text) for sn in prompt.snippets],
            comment=lang.line_comment if lang else "",
        ),
        max_new_tokens=settings.max_tokens_block if multiline else settings.max_tokens_line,
        forced_prefix=forced,
        # The cursor line's text before the cursor, as far as the prompt holds it (a line longer
        # than `maxPrefixChars` is cut there, as the prompt cuts it).
        line_before=(prefix + forced).rsplit("\n", 1)[-1],
        refuse_start=refused_start(prompt.line_before, prompt.line_after, prompt.line_above),
        # A block ends with its first statement (its body, and its `end`); what follows comes
        # as the next suggestion once it is accepted (`Continuation`).
        stop=StopRule(
            multiline=multiline,
            base_indent=block_indent(prompt.line_before),
            piece_repeats=PIECE_REPEATS,  # `ome_dll_dll_dll…` stops after its first `_dll`
            **(lang.statement_rule() if multiline and lang else {}),
        ),
        lookahead=settings.prompt_lookup,
        threads=settings.threads,
    )


def statement_rule_digest(prompt: Prompt, request: GenerationRequest) -> dict[str, str]:
    """The digest of the first-statement rule's patterns, where the generation stopped by it."""
    lang = for_document(prompt.path, prompt.language)
    if not request.stop.statement or lang is None:
        return {}
    return {"statement_rule_sha256": lang.statement_rule_sha256()}


def audit_record(
    ls: AirgapServer,
    params: types.InlineCompletionParams,
    prompt: Prompt,
    request: GenerationRequest,
    engine: Engine,
    gen: Generation,
    text: str,
    total_ms: float,
) -> AuditRecord:
    info = gen.answered_by or engine.info
    return new_record(
        kind="inline_completion",
        client=ls.client,
        file=params.text_document.uri,
        position={"line": params.position.line, "character": params.position.character},
        language=prompt.language,
        model=model_fields(info),
        device=info.device,
        dtype=info.dtype,
        decoding={
            "strategy": "greedy",
            "max_new_tokens": request.max_new_tokens,
            "multiline": request.stop.multiline,
            "base_indent": request.stop.base_indent,
            # The block ends with its first statement, by the rules of the line's language.
            "first_statement": request.stop.statement,
            # A piece written this many times in a row within a line ended it (0: no such rule).
            "piece_repeats": request.stop.piece_repeats,
            **statement_rule_digest(prompt, request),
            # Cut from the prompt's end and forced as the generation's start: replay needs both.
            "forced_prefix": request.forced_prefix,
            "line_before": request.line_before,  # what a loop within the line is judged with
            "refuse_start": request.refuse_start,
            # The suggestions the parse check withheld before this one: each was asked again
            # with their starts refused. Replay needs them too.
            "refuse_first": list(request.refuse_first),
            "prompt_lookup": request.lookahead,
            "threads": gen.threads,  # CPU threads it decoded with; 0: a GPU or a team server
            "steps": gen.steps,  # how the steps ran: inference.engine.Generation.steps
            # What prompt lookup drafted from besides the prompt (the last suggestion's tokens):
            # the drafts change how the steps round, so replay drafts from the same.
            "drafts_from": list(gen.drafts_from),
            "stop_reason": gen.stop_reason,
        },
        prompt=request.prompt,
        text=text,
        context_sources=[
            {"path": sn.path, "lines": [sn.start_line, sn.end_line], "sha256": sn.sha256}
            for sn in prompt.snippets
        ],
        timings=timing_fields(gen, total_ms),
    )
