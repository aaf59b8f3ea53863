"""Random editing sessions against the real server: it stays up, answers every request, and its
view of each document is the editor's.

Hypothesis drives one server (per module) through sequences of didOpen / didChange / didClose,
inline completions (some cancelled as the user types on), hovers, code actions and their resolve,
at random positions: inside a line, past its end, past the last line, between the two halves of
an emoji. Edits are random ranges of a document, and their text mixes ASCII, accents, emoji and
other astral characters (two UTF-16 units each), CRLF, form feeds and line separators (which are
not line ends in LSP), arbitrary Unicode, and nothing; some replace the whole document.

The client keeps its own model of each document. What the server holds is observed where a user
can see it: an audited completion's prompt is the document's text up to the cursor (the
prefix-only prompt of the babble model, no cross-file snippets, no length cut), so a completion
at the end of a document shows the server's whole text; a hover's range is the name under the
cursor; a code action carries the document version it was listed for.

Each example opens its own documents (fresh URIs) and closes them at its end. A failing example is
printed as the steps that led to it; an example after one that hung or killed the server gets a
fresh server, so that shrinking replays each candidate on a clean one.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcRequestCancelled,
)

from audit.verify import verify_chain
from lsp_server.features.accept import ACCEPT
from lsp_server.features.code_actions import SHOW_EXPLANATION
from tests.e2e.harness import (
    AuditLog,
    Editor,
    Hang,
    audit_id,
    bounded,
    completion_items,
    completion_params,
)

pytestmark = pytest.mark.e2e

EXAMPLES = 50
STEPS = 12
T = TypeVar("T")

# Small pieces that make code-like text with every kind of character the positions must count.
PIECES = (
    "a",
    "Zed",
    "_x1",
    " ",
    "    ",
    "\t",
    "\n",
    "\r\n",
    "é",
    "ß",
    "€",
    "😀",  # U+1F600: a surrogate pair in UTF-16
    "𝔘",  # U+1D518: another
    "\x0c",  # form feed: in Python sources; not a line end in LSP
    "\u2028",  # line separator: not a line end in LSP either
    "def ",
    "f(x):",
    "return ",
    "begin",
    "end;",
    ":=",
    "#",
    "--",
    '"',
)
# A lone CR is left out: LSP calls it a line end, Neovim and the server text; CRLF is covered.
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r"), max_size=6)
EDIT_TEXT = st.one_of(
    st.just(""), st.lists(st.sampled_from(PIECES), max_size=8).map("".join), ANY_TEXT
)
DOC_TEXT = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
SEEDS = {
    "python": ("py", "def clamp(value, low):\n    return clamp(low, value)\n"),
    "ada": (
        "adb",
        "procedure Move (Altitude : Integer) is\nbegin\n   Move (Altitude);\nend Move;\n",
    ),
    "plaintext": ("txt", "Clamp the altitude.\n"),
}
DECLARED = r"\b(clamp|Move)\b"  # names the seeds declare: a hover there shows something
MEANT_ERRORS = (JsonRpcRequestCancelled, JsonRpcInvalidParams)


def units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


@dataclass
class Doc:
    """The editor's model of one open document, by the LSP rules: lines end at "\\n" (a "\\r"
    before it belongs to the line end), columns count UTF-16 units, a column past the line's end
    means its end. Past the last line the server's documented rule holds: the end of the text."""

    uri: str
    language_id: str
    text: str
    version: int = 1

    def lines(self) -> list[str]:
        return self.text.split("\n")

    def content(self, line: int) -> str:
        return self.lines()[line].removesuffix("\r")

    def offsets(self, line: int, character: int) -> set[int]:
        """Where a position lands in the text; both sides of a surrogate pair when it points
        between the halves (LSP does not say which)."""
        lines = self.lines()
        if line >= len(lines):
            return {len(self.text)}
        start = sum(len(x) + 1 for x in lines[:line])
        at = 0
        for i, ch in enumerate(self.content(line)):
            if at == character:
                return {start + i}
            if at < character < at + units(ch):
                return {start + i, start + i + 1}
            at += units(ch)
        return {start + len(self.content(line))}

    def offset(self, line: int, character: int) -> int:
        (only,) = self.offsets(line, character)
        return only

    def position(self, offset: int) -> tuple[int, int]:
        before = self.text[:offset]
        line = before.count("\n")
        return line, sum(units(ch) for ch in before[before.rfind("\n") + 1 :])

    def end(self) -> tuple[int, int]:
        last = len(self.lines()) - 1
        return last, sum(units(ch) for ch in self.content(last))


def boundaries(line: str) -> list[int]:
    """The UTF-16 columns of a line's character boundaries, its end included."""
    cols = [0]
    for ch in line:
        cols.append(cols[-1] + units(ch))
    return cols


def draw_position(
    data: st.DataObject, doc: Doc, *, request: bool, names: int = 1
) -> tuple[int, int]:
    """A position in `doc`: at a character boundary, past the line's end, or (for requests, which
    an editor may send for text it has not told the server of) past the last line, on a word, on
    a declared name, or between a surrogate pair's halves."""
    lines = doc.lines()
    kinds = ["boundary", "boundary", "past_line_end"]
    if request:
        kinds += ["past_last_line", "word", "in_pair"] + ["declared"] * names
    kind = data.draw(st.sampled_from(kinds), label="position kind")
    if kind == "past_last_line":
        return len(lines) + data.draw(st.integers(0, 3)), data.draw(st.integers(0, 5))
    pattern = DECLARED if kind == "declared" else r"\w+"
    if kind in ("word", "declared") and (words := list(re.finditer(pattern, doc.text))):
        word = data.draw(st.sampled_from(words), label="word")
        return doc.position(data.draw(st.integers(word.start(), word.end()), label="in word"))
    pairs = [i for i, ch in enumerate(doc.text) if units(ch) == 2]
    if kind == "in_pair" and pairs:
        line, column = doc.position(data.draw(st.sampled_from(pairs), label="pair"))
        return line, column + 1
    line = data.draw(st.integers(0, len(lines) - 1), label="line")
    cols = boundaries(doc.content(line))
    if kind == "past_line_end":
        return line, cols[-1] + data.draw(st.integers(1, 4), label="past the end by")
    return line, data.draw(st.sampled_from(cols), label="column")


def check_error(exc: JsonRpcException, what: str) -> None:
    """An error the server meant: cancelled, invalid params, or its own message for the user.
    Anything else is an exception that escaped a handler."""
    if isinstance(exc, MEANT_ERRORS):
        return
    if isinstance(exc, JsonRpcInternalError) and str(exc.message).startswith("airgap-lsp"):
        return
    raise AssertionError(f"{what}: an unhandled error in the server: {exc!r}") from exc


@dataclass
class Session:
    """One server for the module, and what the examples saw of it."""

    loop: asyncio.AbstractEventLoop
    audit: AuditLog
    workspace: Path
    model: str
    editor: Editor | None = None
    dirty: bool = False  # the server hung or died: the next example starts a fresh one
    uris: Iterator[int] = field(default_factory=itertools.count)
    seen: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.seen[what] = self.seen.get(what, 0) + 1

    def run(self, step: Awaitable[T]) -> T:
        try:
            return self.loop.run_until_complete(step)
        except Hang:
            self.dirty = True
            raise

    async def _start(self) -> Editor:
        editor = Editor("airgap-fuzz")
        await editor.start(
            self.audit.path,
            self.workspace,
            self.model,
            maxTokensLine=4,
            maxTokensBlock=8,
            maxPrefixChars=200_000,
            maxSuffixChars=200_000,
            context={"crossFile": False},
            hover={"maxTokens": 8},
            codeActions={"maxTokens": 16},
        )
        return editor

    def server(self) -> Editor:
        """The running server; a fresh one after an example that hung it or killed it."""
        if self.editor is not None and (self.dirty or not self.editor.alive()):
            self.editor.kill()
            self.loop.run_until_complete(self.editor.client.stop())
            self.editor = None
        if self.editor is None:
            self.editor = self.loop.run_until_complete(self._start())
            self.dirty = False
        return self.editor

    def close(self) -> int | None:
        if self.editor is None:
            return None
        if self.dirty:
            self.editor.kill()
        return self.loop.run_until_complete(self.editor.stop())


@pytest.fixture(scope="module")
def session(babble_model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    loop = asyncio.new_event_loop()
    audit = tmp_path_factory.mktemp("fuzz-audit") / "audit.jsonl"
    workspace = tmp_path_factory.mktemp("fuzz-workspace")
    s = Session(loop=loop, audit=AuditLog(audit), workspace=workspace, model=babble_model)
    try:
        yield s
        clean = not s.dirty
        code = s.close()
        assert not clean or code == 0, f"the server exited with {code} after shutdown"
    finally:
        if s.editor is not None:
            s.editor.kill()
        loop.close()


class EditingSession(RuleBasedStateMachine):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.s = session
        self.editor = session.server()
        self.client = self.editor.client
        self.docs: dict[str, Doc] = {}
        self.closed: list[str] = []
        self.actions: list[tuple[Doc, int, types.CodeAction]] = []  # doc, version listed, action

    # -- documents ------------------------------------------------------------------------------
    @precondition(lambda self: len(self.docs) < 3)
    @rule(language=st.sampled_from(sorted(SEEDS)), seeded=st.booleans(), extra=DOC_TEXT)
    def open_document(self, language: str, seeded: bool, extra: str) -> None:
        suffix, seed = SEEDS[language]
        uri = (self.s.workspace / f"doc-{next(self.s.uris)}.{suffix}").as_uri()
        doc = Doc(uri=uri, language_id=language, text=(seed if seeded else "") + extra)
        note(f"didOpen {uri} ({language}) {doc.text!r}")
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=doc.version, text=doc.text
                )
            )
        )
        self.docs[uri] = doc

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def change(self, data: st.DataObject) -> None:
        doc = self.docs[data.draw(st.sampled_from(sorted(self.docs)), label="document")]
        changes: list[types.TextDocumentContentChangeEvent] = []
        for _ in range(data.draw(st.integers(1, 3), label="changes")):
            text = data.draw(EDIT_TEXT, label="text")
            if data.draw(st.integers(0, 9), label="whole document if 0") == 0:
                changes.append(types.TextDocumentContentChangeWholeDocument(text=text))
                doc.text = text
                continue
            a = draw_position(data, doc, request=False)
            b = draw_position(data, doc, request=False)
            start, end = sorted((a, b), key=lambda p: doc.offset(*p))
            lo, hi = doc.offset(*start), doc.offset(*end)
            changes.append(
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(*start), end=types.Position(*end)),
                    text=text,
                )
            )
            doc.text = doc.text[:lo] + text + doc.text[hi:]
        doc.version += 1
        note(f"didChange {doc.uri} v{doc.version}: {changes!r} -> {doc.text!r}")
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=doc.uri, version=doc.version
                ),
                content_changes=changes,
            )
        )

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        uri = data.draw(st.sampled_from(sorted(self.docs)), label="document")
        note(f"didClose {uri}")
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        del self.docs[uri]
        self.closed.append(uri)

    def pick(self, data: st.DataObject) -> Doc:
        """An open document; now and then one just closed, as a request racing its didClose."""
        if self.closed and data.draw(st.integers(0, 5), label="closed one if 0") == 0:
            uri = data.draw(st.sampled_from(self.closed), label="closed document")
            return Doc(uri=uri, language_id="", text="", version=-1)
        return self.docs[data.draw(st.sampled_from(sorted(self.docs)), label="document")]

    # -- inline completion ----------------------------------------------------------------------
    async def _complete(self, doc: Doc, line: int, character: int, cancel: bool) -> None:
        what = f"inlineCompletion {doc.uri} ({line}, {character})" + (
            " cancelled" if cancel else ""
        )
        msg_id = f"fuzz-{time.monotonic_ns()}"
        reply = self.editor.send(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            completion_params(doc.uri, line, character),
            msg_id,
        )
        if cancel:  # the user typed on: the editor cancels what it asked for
            self.editor.cancel(msg_id)
        try:
            result = await bounded(reply, what)
        except JsonRpcException as exc:
            check_error(exc, what)
            self.s.count("completion error" if not cancel else "completion cancelled")
            return
        items = completion_items(result)
        note(f"{what} -> {[i.insert_text for i in items]!r}")
        if doc.version < 0:
            assert items == [], f"{what}: a suggestion for a closed document"
            return
        assert len(items) <= 1, items
        for item in items:
            self.check_audited(doc, line, character, item)

    def check_audited(
        self, doc: Doc, line: int, character: int, item: types.InlineCompletionItem
    ) -> None:
        """The suggestion's audit line is there, and its prompt is the editor's text up to the
        cursor."""
        rec = self.s.audit.get(audit_id(item))
        assert rec is not None, f"suggestion {audit_id(item)} is not in the audit log"
        assert rec["kind"] == "inline_completion" and rec["file"] == doc.uri
        assert rec["text"] == item.insert_text
        assert rec["position"] == {"line": line, "character": character}
        assert rec["context_sources"] == []
        seen = rec["prompt"] + rec["decoding"]["forced_prefix"]
        expected = [doc.text[:at] for at in sorted(doc.offsets(line, character))]
        assert seen in expected, (
            f"the server's text of {doc.uri} (v{doc.version}) up to ({line}, {character}) is "
            f"{seen!r}; the editor's is {' or '.join(map(repr, expected))}"
        )
        self.s.count("completion checked")

    @precondition(lambda self: self.docs)
    @rule(data=st.data(), cancel=st.booleans())
    def complete(self, data: st.DataObject, cancel: bool) -> None:
        doc = self.pick(data)
        line, character = draw_position(data, doc, request=True)
        self.s.run(self._complete(doc, line, character, cancel))

    # -- hover ----------------------------------------------------------------------------------
    async def _hover(self, doc: Doc, line: int, character: int) -> None:
        what = f"hover {doc.uri} ({line}, {character})"
        params = types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri),
            position=types.Position(line=line, character=character),
        )
        try:
            hover = await bounded(self.client.text_document_hover_async(params), what)
        except JsonRpcException as exc:
            check_error(exc, what)
            self.s.count("hover error")
            return
        note(f"{what} -> {hover!r}")
        if hover is None:
            return
        assert doc.version > 0, f"{what}: a hover for a closed document"
        assert isinstance(hover.contents, types.MarkupContent) and hover.range is not None
        lo = doc.offset(hover.range.start.line, hover.range.start.character)
        hi = doc.offset(hover.range.end.line, hover.range.end.character)
        name = doc.text[lo:hi]
        assert re.fullmatch(r"\w+", name), f"{what}: the hover's range holds {name!r}"
        assert any(lo <= at <= hi for at in doc.offsets(line, character)), (lo, hi)
        assert f"`{name.lower()}`" in hover.contents.value.lower(), hover.contents.value
        if m := re.search(r"audit id `([^`]+)`", hover.contents.value):
            assert self.s.audit.get(m.group(1)) is not None, f"{what}: explanation not audited"
        self.s.count("hover checked")

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def hover(self, data: st.DataObject) -> None:
        doc = self.pick(data)
        line, character = draw_position(data, doc, request=True, names=3)
        self.s.run(self._hover(doc, line, character))

    # -- code actions ---------------------------------------------------------------------------
    async def _code_action(self, doc: Doc, start: tuple[int, int], end: tuple[int, int]) -> None:
        what = f"codeAction {doc.uri} {start}-{end}"
        rng = types.Range(start=types.Position(*start), end=types.Position(*end))
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=[]),
        )
        try:
            actions = await bounded(self.client.text_document_code_action_async(params), what)
        except JsonRpcException as exc:
            check_error(exc, what)
            return
        note(f"{what} -> {[a.title for a in actions or [] if isinstance(a, types.CodeAction)]}")
        for action in actions or []:
            assert isinstance(action, types.CodeAction), action
            data = action.data
            assert isinstance(data, dict) and data["uri"] == doc.uri, data
            # Listed for the text the editor has now: the server is at the editor's version.
            assert data["version"] == doc.version, (data, doc.version)
            assert data["range"] == [*start, *end], data
            self.actions.append((doc, doc.version, action))
        self.s.count("code actions listed" if actions else "no code action")

    @precondition(lambda self: self.docs)
    @rule(data=st.data(), resolve_now=st.booleans())
    def code_action(self, data: st.DataObject, resolve_now: bool) -> None:
        doc = self.pick(data)
        start = draw_position(data, doc, request=True)
        end = draw_position(data, doc, request=True)
        listed = len(self.actions)
        self.s.run(self._code_action(doc, start, end))
        if resolve_now and len(self.actions) > listed:  # picked at once from the menu
            picked = data.draw(st.sampled_from(self.actions[listed:]), label="picked")
            self.s.run(self._resolve(*picked))

    async def _resolve(self, doc: Doc, listed: int, action: types.CodeAction) -> None:
        what = f"codeAction/resolve {action.title!r} on {doc.uri} v{listed}"
        stale = doc.version != listed or doc.uri not in self.docs
        try:
            resolved = await bounded(self.client.code_action_resolve_async(action), what)
        except JsonRpcException as exc:
            check_error(exc, what)
            self.s.count("resolve error")
            return
        note(f"{what} -> edit {resolved.edit!r}, command {resolved.command!r}")
        if stale:  # the text changed since: nothing is proposed for the old one
            assert resolved.edit is None and resolved.command is None, resolved
            self.s.count("stale action refused")
            return
        if resolved.edit is not None:
            assert resolved.edit.changes is not None
            (edit,) = resolved.edit.changes[doc.uri]
            lines = doc.lines()
            for pos in (edit.range.start, edit.range.end):
                assert pos.line < len(lines), (edit, doc.text)
                assert pos.character <= boundaries(doc.content(pos.line))[-1], (edit, doc.text)
            assert resolved.command is not None and resolved.command.command == ACCEPT
            suggestion_id = resolved.command.arguments[0]  # type: ignore[index]
        elif resolved.command is not None:
            assert resolved.command.command == SHOW_EXPLANATION, resolved.command
            suggestion_id = resolved.command.arguments[0]["id"]  # type: ignore[index]
        else:
            self.s.count("resolve withheld")
            return
        rec = self.s.audit.get(suggestion_id)
        assert rec is not None, f"{what}: {suggestion_id} is not in the audit log"
        assert rec["kind"].startswith("code_action.") and rec["file"] == doc.uri, rec["kind"]
        self.s.count("resolve checked")

    @precondition(lambda self: self.actions)
    @rule(data=st.data())
    def resolve(self, data: st.DataObject) -> None:
        doc, listed, action = data.draw(st.sampled_from(self.actions), label="action")
        self.s.run(self._resolve(doc, listed, action))

    # -- after each step, and at the end --------------------------------------------------------
    @invariant()
    def server_is_up(self) -> None:
        assert self.editor.alive(), f"the server exited with {self.editor.process.returncode}"

    def teardown(self) -> None:
        """The server's text of each open document is the editor's, whole; then close them."""
        if self.s.dirty or not self.editor.alive():
            return
        for doc in self.docs.values():
            line, character = doc.end()
            self.s.count("documents at the end")
            before = self.s.seen.get("completion checked", 0)
            self.s.run(self._complete(doc, line, character, cancel=False))
            if self.s.seen.get("completion checked", 0) > before:
                self.s.count("documents checked whole")
            self.client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=doc.uri)
                )
            )


def test_random_editing_sessions_keep_the_server_up_and_in_step(session: Session) -> None:
    started = time.perf_counter()
    run_state_machine_as_test(
        lambda: EditingSession(session),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    seen = session.seen
    print(f"fuzz: {time.perf_counter() - started:.1f} s, {seen}")
    # The checks ran, not just the steps: most documents were read back whole at the end.
    ends = seen.get("documents at the end", 0)
    assert ends >= EXAMPLES // 2 and seen.get("documents checked whole", 0) >= ends // 3, seen
    assert seen.get("hover checked", 0) > 0 and seen.get("code actions listed", 0) > 0, seen
    # And every line the session wrote is chained to the one before.
    chain = verify_chain(session.audit.path)
    assert chain.ok and chain.lines >= seen["completion checked"], chain.reason
