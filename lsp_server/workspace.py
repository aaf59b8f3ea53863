"""What the server knows of the workspace: the open documents, most recent last, and the index
of the workspace's files with the context builder over it, built in the background with
work-done progress and kept current from the editor's text."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from airgap_lsp import egress
from airgap_lsp.settings import Settings
from context.document import ParsedDocument
from context.index import WorkspaceIndex, scan_workers
from context.languages import for_path
from context.retrieval import ContextBuilder, KnowledgeBase
from lsp_server.client import Progress

log = logging.getLogger("airgap_lsp")


class Workspace:
    def __init__(self, ls: LanguageServer, settings: Callable[[], Settings]) -> None:
        self.ls, self.settings = ls, settings
        self.documents: dict[str, ParsedDocument] = {}  # open documents, most recent last
        self.index = WorkspaceIndex(())
        self.context = ContextBuilder(self.index, background=True)
        self._indexed: dict[str, int] = {}  # uri -> document version the index holds
        self._indexing: asyncio.Future[int] | None = None
        self._index_cancel = threading.Event()
        # Called with the uri of a document the editor closed (its suggestions are over).
        self.closed: list[Callable[[str], None]] = []

    def stop(self) -> None:
        """The server is ending: a scan still running stops after the file (or the workers'
        chunk) it is at, and the rankers build nothing more."""
        self._index_cancel.set()
        self.context.similar.close()

    @property
    def started(self) -> bool:
        """Whether indexing was started (the editor said `initialized`)."""
        return self._indexing is not None

    @property
    def index_building(self) -> bool:
        """Whether the workspace index is still being built (or not begun): what it answers
        now may lack the files it has not read yet."""
        return self._indexing is None or not self._indexing.done()

    def holds(self, uri: str, version: int, path: Path) -> bool:
        """Whether the index holds this version of the open document `uri` (at `path`, resolved),
        the editor's text: not while the scan runs, which reads every file from disk, nor for a
        file the index does not take."""
        return (
            not self.index_building
            and self._indexed.get(uri) == version
            and self.index.file(path) is not None
        )

    def roots(self) -> list[Path]:
        folders = self.ls.workspace.folders.values()
        roots = [Path(p) for f in folders if (p := to_fs_path(f.uri))]
        if not roots and self.ls.workspace.root_path:
            roots = [Path(self.ls.workspace.root_path)]
        return roots

    def start_indexing(self) -> None:
        """Index the workspace in the background; the editor shows it as work-done progress."""
        s = self.settings()
        if self._indexing is not None and not self._indexing.done():
            self._index_cancel.set()
        self.context.similar.close()  # the old index's rankers: no more builds
        self.index = WorkspaceIndex(
            self.roots(), exclude=s.context_exclude, fixed_exclude=s.policy_exclude
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
        progress = Progress(self.ls, "airgap-lsp: indexing the workspace")
        await progress.begin()

        def report(done: int, total: int) -> None:
            progress.report_from_thread(f"{done}/{total} files", done, total, last=done == total)

        started = time.perf_counter()
        # A file the parser fails on is left out by the scan itself; what fails here is the
        # server's own fault. It is said, in the progress's end and a message, and what was
        # done before it stays: completions go on with it.
        failed: list[str] = []
        try:
            count = await asyncio.to_thread(
                index.scan, report, cancel, workers=scan_workers(), initializer=egress.install
            )
        except Exception as exc:
            log.exception("index: the workspace scan stopped; completions use the files read")
            failed.append(
                f"the scan stopped ({type(exc).__name__}): files it had not read are not indexed"
            )
            count = len(index)
        if self.index is index:
            # The scan read from disk what completions meanwhile put in from the editor:
            # the open documents go in again at the next request.
            self._indexed.clear()
        # The similar-code rankers too, before the end is reported: no completion waits for one.
        progress.report("ranking similar code")
        try:
            await asyncio.to_thread(context.similar.prepare, cancel)
        except Exception as exc:
            log.exception("similar code: building the rankers failed; prompts go without it")
            failed.append(f"similar code is left out of prompts ({type(exc).__name__})")
        message = f"{count} files indexed in {time.perf_counter() - started:.1f} s"
        if failed:
            message += f"; {'; '.join(failed)}"
            if self.index is index and not cancel.is_set():  # not an index replaced since
                said = "; ".join(failed)
                self.ls.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Warning,
                        message=f"airgap-lsp: indexing the workspace: {said}. Completions go on "
                        "with the rest of the context. The server's log has the error: report "
                        "it. A change of settings or a restart of the server indexes again.",
                    )
                )
        progress.end(message)
        log.info("index: %s", message)
        return count

    async def _read_knowledge(self, kb: KnowledgeBase, cancel: threading.Event) -> None:
        """The knowledge-base folders, read in a worker thread (a folder as large as `/usr`
        takes seconds) under the knowledge base's bounds; the progress and the log say which
        bound stopped it."""
        progress = Progress(self.ls, "airgap-lsp: reading the knowledge base")
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
        self.documents.pop(uri, None)
        for closed in self.closed:
            closed(uri)
        self._indexed.pop(uri, None)
        if path := to_fs_path(uri):
            self.context.forget(Path(path))
        if path and self.index.admits(Path(path)):
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
        if self.index is index:  # not re-indexed meanwhile: the new index does not hold it
            self._indexed[uri] = version
