"""The language server: settings, the model's life cycle, and the features registered on it."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from airgap_lsp import __version__
from airgap_lsp.errors import AirgapError
from airgap_lsp.paths import default_audit_path, model_store_root
from airgap_lsp.policy import Policy
from airgap_lsp.settings import Settings, SettingsError, parse_settings
from audit.record import AuditEvent, AuditRecord, AuditSink, os_identity
from audit.writer import JsonlAudit
from context.document import ParsedDocument
from context.index import WorkspaceIndex
from context.languages import for_path
from context.retrieval import ContextBuilder, KnowledgeBase
from inference.engine import Engine
from lsp_server.client import Progress
from lsp_server.peer import peer_uid
from lsp_server.protocol import AirgapProtocol
from lsp_server.wire import read_messages

if TYPE_CHECKING:
    from lsp_server.features.inline_completion import Shown

log = logging.getLogger("airgap_lsp")
STATUS = "airgap/status"  # server -> client: the model's state, for a status bar
RECENT_RECORDS = 64  # audit records kept in memory for `airgap.auditRecord`


class AirgapServer(LanguageServer):
    def __init__(self, policy: Policy | None = None) -> None:
        super().__init__("airgap-lsp", __version__, protocol_cls=AirgapProtocol)
        self.policy = policy or Policy()
        self.over_tcp = False  # serve --tcp: settings that name paths need the policy's leave
        self.settings = self.policy.apply(Settings())[0]
        self.client: dict[str, str] = {"name": "", "version": ""}
        # One worker: the model runs one generation at a time, off the event loop.
        self.model_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airgap-model")
        self._engine: asyncio.Future[Engine] | None = None
        self._engine_key: tuple[str, str, str, str] | None = None
        self.inflight: dict[str, threading.Event] = {}  # document uri -> cancel flag
        self.completion_stats = dict.fromkeys(
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
            ),
            0,
        )
        # document uri -> its last generated suggestion, whose rest is served while it is typed
        self.last_shown: dict[str, Shown] = {}
        self.shown: dict[str, str] = {}  # document uri -> id of its suggestion awaiting a verdict
        self.offered: dict[str, str] = {}  # id of a resolved code action's edit -> document uri
        self.index = WorkspaceIndex(())
        self.context = ContextBuilder(self.index, background=True)
        self.documents: dict[str, ParsedDocument] = {}  # open documents, most recent last
        self._indexed: dict[str, int] = {}  # uri -> document version the index holds
        self._indexing: asyncio.Future[int] | None = None
        self._index_cancel = threading.Event()
        self.status_state = ""  # the last `airgap/status` state sent
        self.recent: OrderedDict[str, AuditRecord] = OrderedDict()  # id -> record, newest last
        self.explanations: OrderedDict[str, tuple[str, str]] = OrderedDict()  # key -> text, id

    # -- the wire -------------------------------------------------------------------------------
    # pygls's start_io and start_tcp, reading with lsp_server.wire: every request is answered,
    # a malformed one with its JSON-RPC error.
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        self._stop_event = stop = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        try:
            asyncio.run(read_messages(stop, reader, self.protocol))
        except BrokenPipeError:
            log.error("The editor closed the connection; shutting down.")
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """One editor per server, as over stdio. A second connection is closed at once: the
        server has one protocol and one writer, so it would otherwise hear one editor's code
        and answer it to another. A connection from another local user is closed too (the
        kernel says whose it is, lsp_server.peer), and settings that name paths are refused
        over TCP unless the policy allows them (apply_settings)."""
        self._stop_event = stop = threading.Event()
        self.over_tcp = True
        serving: list[asyncio.StreamWriter] = []

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            theirs = writer.get_extra_info("peername")
            uid = peer_uid(writer.get_extra_info("sockname"), theirs)
            if uid != os.getuid():  # another local user, or one the kernel cannot name
                owner = "an owner the kernel does not list" if uid is None else f"uid {uid}"
                log.warning(
                    "refused a connection from %s: it belongs to %s, not to this server's user "
                    "(uid %d); only the user who started `airgap-lsp serve --tcp` is served",
                    theirs,
                    owner,
                    os.getuid(),
                )
                writer.close()
                return
            if serving:
                log.warning(
                    "refused a second connection from %s: this server already serves an "
                    "editor; start another `airgap-lsp serve` for it",
                    writer.get_extra_info("peername"),
                )
                writer.close()
                return
            serving.append(writer)
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            await read_messages(stop, reader, self.protocol)
            self.shutdown()

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            addresses = ", ".join(str(s.getsockname()) for s in self._server.sockets)
            log.info("Serving on %s", addresses)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            log.info("TCP server stopped")

    # -- settings -------------------------------------------------------------------------------
    def apply_settings(self, raw: Any) -> None:
        """Take new settings, or keep the last good ones and tell the user why."""
        before = self.settings
        try:
            paths = not self.over_tcp or self.policy.tcp_path_settings
            parsed = parse_settings(raw, self.settings, paths_allowed=paths)
            self.settings, overridden = self.policy.apply(parsed)
        except SettingsError as exc:
            self.show_error(str(exc))
            return
        for message in overridden:
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            )
        if self._engine_key is not None:  # after start-up: a new model, device or dtype reloads
            self.ensure_model()
        s = self.settings
        rules = (s.context_exclude, s.policy_exclude, s.knowledge_base)
        was = (before.context_exclude, before.policy_exclude, before.knowledge_base)
        if self._indexing is not None and rules != was:
            self.start_indexing()  # what may be read changed: index again under the new rules

    def audit_sink(self) -> AuditSink:
        path = Path(self.settings.audit_path).expanduser() if self.settings.audit_path else None
        p = self.policy
        return JsonlAudit(
            path or default_audit_path(),
            max_bytes=p.audit_max_bytes,
            monthly=p.audit_monthly,
            group=p.audit_group or None,
        )

    def audit(self, record: AuditRecord) -> None:
        """Write a suggestion's line (flushed before any reply shows it) and remember it."""
        self.audit_sink().write(record)
        self.recent[record.id] = record
        while len(self.recent) > RECENT_RECORDS:
            self.recent.popitem(last=False)

    def audit_event(self, event: str, suggestion_id: str, uri: str, reason: str = "") -> None:
        """An accept / not-accepted line, with the same id as the suggestion it is about."""
        user, host = os_identity()
        self.audit_sink().write(
            AuditEvent(
                id=suggestion_id,
                time=datetime.now(UTC).isoformat(timespec="milliseconds"),
                kind=event,
                user=user,
                host=host,
                client=dict(self.client),
                file=uri,
                reason=reason,
            )
        )

    def withdraw(self, suggestion_id: str, uri: str, reason: str) -> None:
        """A suggestion's not-accepted line; a failed write is shown to the user."""
        try:
            self.audit_event("not_accepted", suggestion_id, uri, reason)
        except AirgapError as exc:
            self.show_error(str(exc))

    def replace_shown(self, uri: str, suggestion_id: str | None, reason: str = "replaced") -> None:
        """A new suggestion (or none) for a document: the one it replaces was not accepted."""
        previous = self.shown.pop(uri, None)
        if previous is not None:
            self.withdraw(previous, uri, reason)
        if suggestion_id is not None:
            self.shown[uri] = suggestion_id

    def send_status(self, state: str, message: str = "", engine: Engine | None = None) -> None:
        """`airgap/status`: loading, ready or error, with the model and where it runs."""
        self.status_state = state
        info = engine.info if engine is not None else None
        name, _, version = self.settings.model.partition("@")
        self.protocol.notify(
            STATUS,
            {
                "state": state,
                "model": info.name if info else name,
                "version": info.version if info else version,
                "device": info.device if info else "",
                "dtype": info.dtype if info else "",
                "message": message,
            },
        )

    def audited(self, engine: Engine) -> None:
        """An audit line was written: an error shown for a failed write is over."""
        if self.status_state == "error":
            info = engine.info
            self.send_status("ready", f"{info.name}@{info.version} on {info.device}", engine)

    @contextmanager
    def following(self, token: types.ProgressToken | None, title: str) -> Iterator[None]:
        """Work-done progress on the token an editor sent with its request: `begin` when the
        work starts, `end` when it stops, however it stops. Without a token, nothing is sent."""
        if token is None:
            yield
            return
        progress = self.work_done_progress
        progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
        try:
            yield
        finally:
            progress.end(token, types.WorkDoneProgressEnd())
            progress.tokens.pop(token, None)  # pygls keeps each token it began: one per request

    def show_error(self, message: str) -> None:
        log.error(message)
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=message)
        )

    # -- the workspace --------------------------------------------------------------------------
    def workspace_roots(self) -> list[Path]:
        folders = self.workspace.folders.values()
        roots = [Path(p) for f in folders if (p := to_fs_path(f.uri))]
        if not roots and self.workspace.root_path:
            roots = [Path(self.workspace.root_path)]
        return roots

    def start_indexing(self) -> None:
        """Index the workspace in the background; the editor shows it as work-done progress."""
        s = self.settings
        if self._indexing is not None and not self._indexing.done():
            self._index_cancel.set()
        self.context.similar.close()  # the old index's rankers: no more builds
        self.index = WorkspaceIndex(
            self.workspace_roots(), exclude=s.context_exclude, fixed_exclude=s.policy_exclude
        )
        kb = KnowledgeBase([Path(p) for p in s.knowledge_base], self.index)
        self.context = ContextBuilder(self.index, kb, background=True)
        self._indexed.clear()
        self._index_cancel = threading.Event()
        self._indexing = asyncio.ensure_future(self._scan(self.context, kb, self._index_cancel))

    async def _scan(
        self, context: ContextBuilder, kb: KnowledgeBase, cancel: threading.Event
    ) -> int:
        index = context.index
        if kb.folders:
            await self._read_knowledge(kb, cancel)
        if cancel.is_set():
            return 0
        progress = Progress(self, "airgap-lsp: indexing the workspace")
        await progress.begin()

        def report(done: int, total: int) -> None:
            progress.report_from_thread(f"{done}/{total} files", done, total, last=done == total)

        started = time.perf_counter()
        count = await asyncio.to_thread(index.scan, report, cancel)
        if self.index is index:
            # The scan read from disk what completions meanwhile put in from the editor:
            # the open documents go in again at the next request.
            self._indexed.clear()
        # The similar-code rankers too, before the end is reported: no completion waits for one.
        progress.report("ranking similar code")
        await asyncio.to_thread(context.similar.prepare, cancel)
        message = f"{count} files indexed in {time.perf_counter() - started:.1f} s"
        progress.end(message)
        log.info("index: %s", message)
        return count

    async def _read_knowledge(self, kb: KnowledgeBase, cancel: threading.Event) -> None:
        """The knowledge-base folders, read in a worker thread (a folder as large as `/usr`
        takes seconds) under the knowledge base's bounds; the progress and the log say which
        bound stopped it."""
        progress = Progress(self, "airgap-lsp: reading the knowledge base")
        await progress.begin()

        def report(files: int, size: int) -> None:
            progress.report_from_thread(f"{files} files read ({size:,} bytes)")

        read = await asyncio.to_thread(kb.scan, report, cancel)
        progress.end(read.summary())
        if read.limit and not cancel.is_set():
            log.warning("knowledge base: %s", read.summary())
        else:
            log.info("knowledge base: %s", read.summary())

    def touch(self, uri: str, doc: ParsedDocument) -> None:
        """Keep the open documents in the order they were last used."""
        self.documents.pop(uri, None)
        self.documents[uri] = doc

    def close_document(self, uri: str) -> None:
        self.replace_shown(uri, None, "document closed")
        self.last_shown.pop(uri, None)
        self.documents.pop(uri, None)
        if (cancel := self.inflight.pop(uri, None)) is not None:
            cancel.set()
        self._indexed.pop(uri, None)
        if (path := to_fs_path(uri)) and self.index.admits(Path(path)):
            self.index.update(Path(path))  # back to what is on disk

    async def refresh_index(self, uri: str) -> None:
        """Put an open document's current text in the index, if it changed since last time.

        Indexing a large file takes a while (a quarter of a second at 20,000 lines): it runs
        off the event loop, which goes on reading keystrokes. The text and tree are taken here:
        a tree handed out is never edited (edits go to a copy).
        """
        doc = self.documents.get(uri)
        path = to_fs_path(uri)
        if doc is None or path is None or self._indexed.get(uri) == doc.version:
            return
        version, index = doc.version, self.index
        # As the scan would: a file `.gitignore` or a skipped folder leaves out is not indexed
        # because it is open (it would become context for every other file).
        # One the index holds was let in already: the rules are read again only for the others.
        admitted = index.file(Path(path).resolve()) is not None or await asyncio.to_thread(
            index.admits, Path(path)
        )
        if admitted and len(doc.source) > index.max_file_bytes:
            index.remove(Path(path).resolve())  # as `update` would, without decoding the text
        elif admitted:
            # The incremental parse, if it is in the grammar the index would use for the path.
            tree = doc.tree if doc.language == for_path(path) else None
            await asyncio.to_thread(index.update, Path(path), doc.text, tree)
            if self.documents.get(uri) is not doc:  # closed meanwhile: back to what is on disk
                await asyncio.to_thread(index.update, Path(path))
                return
        self._indexed[uri] = version

    # -- the model ------------------------------------------------------------------------------
    def ensure_model(self) -> None:
        """Start loading the configured model unless it is loaded or loading already."""
        s = self.settings
        key = (s.model, s.device, s.dtype, s.backend_url)
        if key == self._engine_key:
            return
        self._engine_key = key
        self.last_shown.clear()  # suggestions of the model before: not to be served from
        self._engine = asyncio.ensure_future(self._load(*key))
        # A failed load is shown to the user as it happens and retried on the next request;
        # reading it here keeps asyncio from logging it again as never retrieved.
        self._engine.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def engine(self) -> Engine:
        """The loaded model; waits while it loads. A load that failed is tried again, so that
        importing the missing model or fixing the store needs no restart."""
        failed = self._engine is not None and self._engine.done() and self._engine.exception()
        if self._engine is None or failed:
            self._engine_key = None
            self.ensure_model()
        assert self._engine is not None
        return await asyncio.shield(self._engine)

    def engine_now(self) -> Engine | str:
        """The loaded model, or why there is none yet: never waits (a hover must not)."""
        if self._engine is None:
            self.ensure_model()
            return "the model has not started loading"
        if not self._engine.done():
            return f"the model {self.settings.model} is still loading"
        if (exc := self._engine.exception()) is not None:  # `engine()` will try again
            return f"the model {self.settings.model} could not be loaded: {exc}"
        return self._engine.result()

    async def _load(self, ref: str, device: str, dtype: str, backend_url: str = "") -> Engine:
        where = f" on the team server {backend_url}" if backend_url else ""
        progress = Progress(self, f"airgap-lsp: loading {ref}{where}")
        self.send_status("loading", f"loading {ref}{where}")
        await progress.begin()
        loop = asyncio.get_running_loop()

        def hashing(name: str, done: int, total: int) -> None:
            if done == total:
                loop.call_soon_threadsafe(progress.report, f"checked {name}")

        def load_local() -> Engine:
            from inference.engine import LocalEngine
            from inference.store import ModelStore

            # Loaded from the very files that were hashed, held open until the load is done.
            with ModelStore(model_store_root()).held(ref, progress=hashing) as stored:
                self.policy.check_model(stored)
                loop.call_soon_threadsafe(progress.report, "loading weights")
                engine = LocalEngine(stored, device=device, dtype=dtype)
            loop.call_soon_threadsafe(progress.report, "warming up")
            seconds = engine.warm_up(self.settings.prompt_lookup)
            log.info("warm-up: %.2f s; decoding steps: %s", seconds, engine.steps)
            return engine

        def load() -> Engine:
            self.policy.check_user()
            if not backend_url:
                return load_local()
            return self._load_remote(ref, backend_url, hashing, load_local, progress, loop)

        try:
            engine = await loop.run_in_executor(self.model_worker, load)
        except Exception as exc:
            # Whatever stopped the load, the user is told and the progress ends: a model left
            # "loading" for ever is a hang. Requests get the same reason, as an AirgapError.
            failure = exc
            if not isinstance(exc, AirgapError):
                log.error("loading %s failed unexpectedly", ref, exc_info=exc)
                failure = AirgapError(
                    f"{type(exc).__name__}: {exc} (the server's log has the details; import a "
                    "model this version of transformers can load)"
                )
            progress.end("failed")
            self.send_status("error", f"cannot load {ref}: {failure}")
            self.show_error(f"airgap-lsp cannot load the model {ref}: {failure}")
            if failure is exc:
                raise
            raise failure from exc
        info = engine.info
        message = f"{info.name}@{info.version} on {info.device} ({info.dtype})"
        progress.end(message)
        self.send_status("ready", message, engine)
        log.info("model ready: %s, manifest sha256 %s", message, info.manifest_sha256)
        self.window_log_message(
            types.LogMessageParams(type=types.MessageType.Info, message=f"airgap-lsp: {message}")
        )
        return engine

    def _load_remote(
        self,
        ref: str,
        url: str,
        hashing: Callable[[str, int, int], None],
        load_local: Callable[[], Engine],
        progress: Progress,
        loop: asyncio.AbstractEventLoop,
    ) -> Engine:
        """The team server, checked against the locked model's manifest in the local store.

        Down at start-up: the local model if the policy allows a fallback, else the load fails
        (and is tried again on the next request). Serving another model: refused, no fallback.
        """
        from inference.errors import BackendDown
        from inference.remote import RemoteEngine, TeamEngine
        from inference.store import ModelStore

        backend = self.policy.remote_backend(url)
        # The tokenizer, chat template and configs are hashed and read here; the weights are not
        # loaded (their hashes are in the manifest that the server's name must carry).
        with ModelStore(model_store_root()).held(ref, progress=hashing, weights=False) as stored:
            self.policy.check_model(stored)
            loop.call_soon_threadsafe(progress.report, f"checking {url}")
            remote = RemoteEngine(stored, url, ca_file=backend.ca_file, timeout_s=backend.timeout_s)

        def tell(message: str, down: bool) -> None:
            loop.call_soon_threadsafe(self.backend_changed, message, down)

        fallback = load_local if backend.fallback == "local" else None
        engine = TeamEngine(remote, fallback, tell)
        try:
            served = remote.check()
        except BackendDown as exc:
            if fallback is None:
                raise  # the load fails, the user is told, the next request tries again
            engine.went_down(exc)
        else:
            log.info("team server %s serves %s", url, served)
        return engine

    def backend_changed(self, message: str, down: bool) -> None:
        """The team server went down (the local model answers) or came back: tell the user."""
        now = self.engine_now()
        engine = None if isinstance(now, str) else now
        if down:
            self.send_status("error", message, engine)
            log.warning(message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            )
        else:
            self.send_status("ready", message, engine)
            log.info(message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Info, message=message)
            )


class _Progress:
    """LSP work-done progress, if the editor supports it; a no-op otherwise."""

    # Reports may come after the end (from a worker thread): they are dropped then.

    # A worker thread reports at most this often (a scan calls after every file).
    THROTTLE_S = 0.2

    def __init__(self, server: AirgapServer, title: str) -> None:
        self.server, self.title = server, title
        self.token: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0.0

    async def begin(self) -> None:
        self._loop = asyncio.get_running_loop()
        caps = self.server.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return
        self.token = f"airgap-{uuid.uuid4()}"
        await self.server.work_done_progress.create_async(self.token)
        self.server.work_done_progress.begin(
            self.token, types.WorkDoneProgressBegin(title=self.title, cancellable=False)
        )

    def report(self, message: str, done: int = 0, total: int = 0) -> None:
        if self.token:
            percentage = int(100 * done / total) if total else None
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def report_from_thread(
        self, message: str, done: int = 0, total: int = 0, *, last: bool = False
    ) -> None:
        """`report` from a worker thread, on the event loop, at most every THROTTLE_S seconds
        (and always for the `last` report)."""
        now = time.monotonic()
        if self._loop is None or (now - self._last <= self.THROTTLE_S and not last):
            return
        self._last = now
        self._loop.call_soon_threadsafe(self.report, message, done, total)

    def end(self, message: str) -> None:
        if self.token:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message=message)
            )
            self.token = None
