"""Open documents, parsed incrementally, and the index kept current from edits, saves and the
editor's file watcher."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import to_fs_path

from context.document import Change, ParsedDocument
from context.languages import for_document

if TYPE_CHECKING:
    from lsp_server.server import AirgapServer

WATCH_ID = "airgap-lsp-watch"
log = logging.getLogger("airgap_lsp.documents")


def register(server: AirgapServer) -> None:
    told: set[str] = set()  # documents whose user was told they are too large to parse

    def tell_if_oversized(ls: AirgapServer, uri: str, doc: ParsedDocument) -> None:
        """Once per document: it is kept as text only, and what that leaves of the features."""
        if not doc.oversized or uri in told:
            return
        told.add(uri)
        size, limit = len(doc.source) / 1e6, doc.max_parsed_bytes / 1e6
        log.warning("%s is %.1f MB, over the %.1f MB parsed: kept as text only", uri, size, limit)
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Info,
                message=(
                    f"airgap-lsp: {uri} is {size:.1f} MB, over the {limit:.1f} MB it parses. "
                    "Completions there read only the text around the cursor and are not "
                    "checked by a parse; its outline and code actions are off."
                ),
            )
        )

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: AirgapServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        language = for_document(to_fs_path(item.uri) or item.uri, item.language_id)
        doc = ParsedDocument(item.text, language, version=item.version)
        ls.files.touch(item.uri, doc)
        tell_if_oversized(ls, item.uri, doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: AirgapServer, params: types.DidChangeTextDocumentParams) -> None:
        doc = ls.files.documents.get(params.text_document.uri)
        if doc is None:
            return
        changes = []
        for c in params.content_changes:
            if isinstance(c, types.TextDocumentContentChangePartial):
                r = c.range
                start, end = (r.start.line, r.start.character), (r.end.line, r.end.character)
                changes.append(Change(text=c.text, start=start, end=end))
            else:
                changes.append(Change(text=c.text))
        uri = params.text_document.uri
        try:
            doc.apply(changes, params.text_document.version)
        except ValueError as exc:
            # Nothing was applied, so the server's copy is no longer the editor's text. Offering
            # suggestions on stale text would insert them in the wrong place: the document is
            # dropped until the editor opens it again.
            ls.files.close_document(uri)
            log.warning("lost track of %s: %s", uri, exc)
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning,
                    message=(
                        f"airgap-lsp could not apply an edit to {uri} ({exc}), so it no longer "
                        "knows the document's text and makes no suggestions in it. Close and "
                        "reopen the file to resume."
                    ),
                )
            )
            return
        ls.files.touch(uri, doc)
        tell_if_oversized(ls, uri, doc)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: AirgapServer, params: types.DidSaveTextDocumentParams) -> None:
        await ls.files.refresh_index(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: AirgapServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.files.close_document(uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(
        ls: AirgapServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        for event in params.changes:
            path = to_fs_path(event.uri)
            if path is None or event.uri in ls.files.documents:
                continue  # the editor's buffer is newer than the disk
            if event.type == types.FileChangeType.Deleted:
                ls.files.index.remove(Path(path))
            elif ls.files.index.inside(Path(path)):
                ls.files.index.update(Path(path))


async def watch_files(ls: AirgapServer) -> None:
    """Ask the editor to report file changes, where it can register watchers for us."""
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps else None
    if not (watched and watched.dynamic_registration):
        return
    try:
        await ls.client_register_capability_async(
            types.RegistrationParams(
                registrations=[
                    types.Registration(
                        id=WATCH_ID,
                        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                        register_options=types.DidChangeWatchedFilesRegistrationOptions(
                            watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
                        ),
                    )
                ]
            )
        )
    except JsonRpcException as exc:  # the index still follows edits and saves
        log.warning("the editor refused to watch files for the index: %s", exc)
