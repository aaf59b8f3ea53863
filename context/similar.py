"""Similar code from the whole workspace: line windows of every indexed file, ranked by BM25.

A window is `WINDOW` lines, one every `STRIDE` lines, of an indexed file. The windows of one
language family form one BM25 index (`bm25s`, a kept library: its scores are the standard Lucene
BM25, and it ranks tens of thousands of windows in milliseconds), searched with the identifiers of
the lines around the cursor. The index follows the workspace index: a search first rebuilds a
family whose files changed, reusing the words of every file whose text did not. The file being
edited never matches its own windows (its text around the cursor is in the prompt already), so
typing in it does not make the index stale.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from context.index import FileEntry, WorkspaceIndex, entry_hash
from context.languages import family

log = logging.getLogger("airgap_lsp.context")

WINDOW = 20
STRIDE = 10  # WINDOW is a whole number of strides: a window's words are its strides' words
# A ranker this small is rebuilt before the search (in milliseconds), so an edit in another
# open document is searched at once; a larger one in the background.
SYNC_WINDOWS = 2_000
# Identifiers of two characters or more, compared lower-cased: Ada and VHDL ignore case, and in
# the other languages two names differing only in case are rare enough not to matter for ranking.
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")


def words(text: str) -> list[str]:
    # Interned: a workspace's windows repeat a few thousand names millions of times. The text
    # is lower-cased as bytes, which lowers ASCII letters only, as lowering each (ASCII) word
    # would: `str.lower` makes ASCII letters of some others (the Kelvin sign's is a `k`).
    lowered = text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
    return list(map(sys.intern, WORD.findall(lowered)))


@dataclass(frozen=True, slots=True)
class Window:
    path: Path
    start: int  # first line, from 0
    end: int  # last line, inclusive
    lines: tuple[str, ...]
    score: float


@dataclass(frozen=True, slots=True)
class _Family:
    files: dict[Path, str]  # path -> sha256 of the text the windows were cut from
    spans: list[tuple[FileEntry, int]]  # one per window: its file, its first line
    of_path: dict[Path, np.ndarray]  # the window numbers of each file
    ranker: bm25s.BM25 | None  # None: no window has a word
    digest: int  # of `files`, as `WorkspaceIndex.family_digest` makes it

    def digest_leaving_out(self, path: Path) -> int:
        sha = self.files.get(path)
        return self.digest if sha is None else self.digest ^ entry_hash(path, sha)


class SimilarCode:
    """The BM25 search over windows of the indexed files. Safe to use from several threads.

    With `background` (the server), a search does not wait for a large ranker: one of more than
    `SYNC_WINDOWS` windows whose files changed is rebuilt in a worker thread while searches go
    on with the one before (without the windows of files changed since), and nothing is built
    before `prepare` has built every family's first ranker after the workspace scan. Without it
    (tests, benchmarks), and for a small ranker, a search rebuilds first.
    """

    def __init__(self, index: WorkspaceIndex, *, background: bool = False) -> None:
        self.index = index
        self.background = background
        self._families: dict[str, _Family] = {}
        # family -> (path, sha256) -> the words of each window
        self._words: dict[str, dict[tuple[Path, str], list[list[str]]]] = {}
        self._lock = threading.Lock()  # guards the dicts and the worker below
        self._build_locks: dict[str, threading.Lock] = {}  # one build of a family at a time
        self._builder: threading.Thread | None = None
        self._wanted: dict[str, Path | None] = {}  # families the worker is to rebuild
        self._ready = not background
        self._closed = threading.Event()

    def prepare(self, cancel: threading.Event | None = None) -> None:
        """Build the ranker of every family the index holds (after a scan, off the editor's
        path), so that no completion waits for one."""
        for name in sorted({family(e.language) for e in self.index.files()}):
            if self._closed.is_set() or (cancel is not None and cancel.is_set()):
                return
            self._rebuild(name, None, wait=True)
        self._ready = True

    def close(self) -> None:
        """No more builds: the index this searches was replaced (settings changed, a rescan)."""
        self._closed.set()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait for a background rebuild to finish; False if it was still running."""
        with self._lock:
            worker = self._builder
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def state(self, name: str) -> tuple[bool, int | None]:
        """What a search of the family `name` answers from besides its query and the index:
        whether the first builds are done, and which files its ranker was built from (their
        digest; None: none built)."""
        with self._lock:
            fam = self._families.get(name)
        return self._ready, None if fam is None else fam.digest

    def search(self, path: Path, language: str, query: str, limit: int) -> list[Window]:
        """The `limit` best windows of other files of `language`'s family for `query`, best
        first; windows that overlap a better one of the same file, or repeat its text, are left
        out."""
        tokens = words(query)
        if not tokens or limit <= 0:
            return []
        fam, files = self._ranker(family(language), path)
        if fam is None or fam.ranker is None:
            return []
        mask = np.ones(len(fam.spans), dtype=np.float32)
        # The file being edited, and files changed since the ranker was built (it is being
        # rebuilt): their windows are not the text the index holds now.
        if files is None:  # none changed
            if (n := fam.of_path.get(path)) is not None:
                mask[n] = 0.0
        else:
            for p, sha in fam.files.items():
                if (p == path or files.get(p) != sha) and (n := fam.of_path.get(p)) is not None:
                    mask[n] = 0.0
        if not mask.any():
            return []
        k = min(len(fam.spans), limit * 8)
        found, scores = fam.ranker.retrieve(
            [tokens], k=k, show_progress=False, weight_mask=mask, n_threads=0
        )
        ranked = []
        for n, score in zip(found[0], scores[0], strict=True):
            entry, start = fam.spans[int(n)]
            # The index may have changed since `files` was read: only what it holds now.
            now = self.index.file(entry.path)
            if now is None or now.sha256 != entry.sha256:
                continue
            lines = entry.lines[start : start + WINDOW]
            ranked.append(((entry.path, start, lines), float(score)))
        return _best(ranked, limit)

    @staticmethod
    def search_texts(texts: Iterable[tuple[Path, str]], query: str, limit: int) -> list[Window]:
        """The same search over texts that are not in the index (documents open from outside
        the workspace), in a throwaway index."""
        tokens = words(query)
        if not tokens or limit <= 0:
            return []
        spans: list[tuple[Path, int, tuple[str, ...]]] = []
        corpus: list[list[str]] = []
        for path, text in texts:
            for start, window in _windows(tuple(text.split("\n"))):
                if toks := words("\n".join(window)):
                    spans.append((path, start, window))
                    corpus.append(toks)
        if not corpus:
            return []
        ranker = bm25s.BM25()
        ranker.index(corpus, show_progress=False)
        found, scores = ranker.retrieve(
            [tokens], k=min(len(corpus), limit * 8), show_progress=False, n_threads=0
        )
        return _best(
            ((spans[int(n)], float(sc)) for n, sc in zip(found[0], scores[0], strict=True)), limit
        )

    def _ranker(self, name: str, editing: Path) -> tuple[_Family | None, dict[Path, str] | None]:
        """The family's ranker, rebuilt (now, or in the background) when a file other than the
        one being edited changed since it was built; and the family's files as the index holds
        them now, or None when they are those the ranker was built from (but for the one being
        edited): the index's digest tells, without listing them."""
        with self._lock:
            fam = self._families.get(name)
        if fam is not None and fam.digest_leaving_out(editing) == self.index.family_digest(
            name, leaving_out=editing
        ):
            return fam, None
        files = self.index.family_files(name)
        if fam is not None and _same(fam.files, files, editing):
            return fam, files
        if not self.background:
            return self._rebuild(name, editing, wait=True) or fam, files
        if not self._ready or self._closed.is_set():
            return fam, files
        if fam is not None and len(fam.spans) <= SYNC_WINDOWS:
            # Milliseconds, unless another thread is building it: then the one before.
            return self._rebuild(name, editing, wait=False) or fam, files
        with self._lock:
            self._wanted[name] = editing
            if self._builder is None:
                self._builder = threading.Thread(
                    target=self._work, name="airgap-similar", daemon=True
                )
                self._builder.start()
        return fam, files

    def _work(self) -> None:
        while True:
            with self._lock:
                # Cleared under the lock that `_ranker` reads it under: work added after this
                # starts a new worker.
                if not self._wanted or self._closed.is_set():
                    self._builder = None
                    return
                name, editing = self._wanted.popitem()
            try:
                self._rebuild(name, editing, wait=True)
            except Exception:  # the worker goes on; the search keeps the ranker before
                log.exception("similar code: rebuilding the %s ranker failed", name)

    def _rebuild(self, name: str, editing: Path | None, *, wait: bool) -> _Family | None:
        """Cut the family's files into windows (reusing the words of unchanged files) and index
        them. None when not `wait` and another thread is building this family."""
        with self._lock:
            lock = self._build_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=wait):
            return None
        try:
            return self._build(name, editing)
        finally:
            lock.release()

    def _build(self, name: str, editing: Path | None) -> _Family:
        entries = [e for e in self.index.files() if family(e.language) == name]
        with self._lock:
            old = self._families.get(name)
            known = self._words.get(name, {})
        now = {e.path: e.sha256 for e in entries}
        if old is not None and _same(old.files, now, editing):
            return old  # built by another thread meanwhile
        spans: list[tuple[FileEntry, int]] = []
        corpus: list[list[str]] = []
        of_path: dict[Path, np.ndarray] = {}
        kept: dict[tuple[Path, str], list[list[str]]] = {}
        for entry in entries:
            key = (entry.path, entry.sha256)
            cut = known.get(key)
            if cut is None:
                cut = _window_words(entry.lines)
            kept[key] = cut
            first = len(spans)
            for (start, _), toks in zip(_windows(entry.lines), cut, strict=True):
                if toks:
                    spans.append((entry, start))
                    corpus.append(toks)
            of_path[entry.path] = np.arange(first, len(spans))
        ranker = None
        if corpus:
            ranker = bm25s.BM25()
            ranker.index(corpus, show_progress=False)
        files = {e.path: e.sha256 for e in entries}
        digest = 0
        for path, sha in files.items():
            digest ^= entry_hash(path, sha)
        fam = _Family(files=files, spans=spans, of_path=of_path, ranker=ranker, digest=digest)
        with self._lock:
            self._families[name] = fam
            self._words[name] = kept  # the words of files gone or changed go with them
        return fam


def _best(
    ranked: Iterable[tuple[tuple[Path, int, tuple[str, ...]], float]], limit: int
) -> list[Window]:
    """The first `limit` windows, best first, without one that overlaps a better window of the
    same file or repeats its text (a copy, a generated twin), and without those that share no
    word with the query."""
    chosen: list[Window] = []
    texts: set[str] = set()
    for (path, start, lines), score in ranked:
        if score <= 0 or len(chosen) >= limit:
            break
        end = start + len(lines) - 1
        if any(w.path == path and w.start <= end and start <= w.end for w in chosen):
            continue
        key = "\n".join(s for line in lines if (s := line.strip()))
        if key in texts:
            continue
        texts.add(key)
        chosen.append(Window(path, start, end, lines, score))
    return chosen


def _windows(lines: tuple[str, ...]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(first line, lines) of each window of a text: one every STRIDE lines, to its end."""
    for start in range(0, max(len(lines) - STRIDE, 1), STRIDE):
        yield start, lines[start : start + WINDOW]


def _window_words(lines: tuple[str, ...]) -> list[list[str]]:
    """The words of each window of `_windows(lines)`. A word never spans two lines, so a
    window's words are those of its STRIDE-line blocks, each block's found once (windows
    overlap)."""
    blocks = [words("\n".join(lines[i : i + STRIDE])) for i in range(0, len(lines), STRIDE)]
    return [
        list(itertools.chain.from_iterable(blocks[start // STRIDE : (start + WINDOW) // STRIDE]))
        for start, _ in _windows(lines)
    ]


def _same(built: dict[Path, str], now: dict[Path, str], editing: Path | None) -> bool:
    """The same files with the same texts, but for the one being edited (never searched)."""
    if built.keys() != now.keys():
        return False
    return all(sha == now[p] for p, sha in built.items() if p != editing)
