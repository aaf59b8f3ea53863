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

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from context.index import FileEntry, WorkspaceIndex
from context.languages import family

WINDOW = 20
STRIDE = 10
# Identifiers of two characters or more, compared lower-cased: Ada and VHDL ignore case, and in
# the other languages two names differing only in case are rare enough not to matter for ranking.
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


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


class SimilarCode:
    """The BM25 search over windows of the indexed files. Safe to use from two threads."""

    def __init__(self, index: WorkspaceIndex) -> None:
        self.index = index
        self._families: dict[str, _Family] = {}
        # family -> (path, sha256) -> the words of each window
        self._words: dict[str, dict[tuple[Path, str], list[list[str]]]] = {}
        self._lock = threading.Lock()

    def search(self, path: Path, language: str, query: str, limit: int) -> list[Window]:
        """The `limit` best windows of other files of `language`'s family for `query`, best
        first; windows that overlap a better one of the same file, or repeat its text, are left
        out."""
        tokens = words(query)
        if not tokens or limit <= 0:
            return []
        with self._lock:
            fam = self._current(family(language), path)
            if fam.ranker is None:
                return []
            mask = np.ones(len(fam.spans), dtype=np.float32)
            own = fam.of_path.get(path)
            if own is not None:
                mask[own] = 0.0
            if not mask.any():
                return []
            k = min(len(fam.spans), limit * 8)
            found, scores = fam.ranker.retrieve(
                [tokens], k=k, show_progress=False, weight_mask=mask, n_threads=1
            )
        ranked = []
        for n, score in zip(found[0], scores[0], strict=True):
            entry, start = fam.spans[int(n)]
            ranked.append(((entry.path, start, entry.lines[start : start + WINDOW]), float(score)))
        return _best(ranked, limit)

    @staticmethod
    def search_texts(texts: Iterable[tuple[Path, str]], query: str, limit: int) -> list[Window]:
        """The same search over texts that are not in the index (documents open from outside
        the workspace), in a throwaway index."""
        tokens = words(query)
        spans: list[tuple[Path, int, tuple[str, ...]]] = []
        corpus: list[list[str]] = []
        for path, text in texts:
            lines = tuple(text.split("\n"))
            for start in range(0, max(len(lines) - STRIDE, 1), STRIDE):
                window = lines[start : start + WINDOW]
                if toks := words("\n".join(window)):
                    spans.append((path, start, window))
                    corpus.append(toks)
        if not tokens or not corpus or limit <= 0:
            return []
        ranker = bm25s.BM25()
        ranker.index(corpus, show_progress=False)
        found, scores = ranker.retrieve(
            [tokens], k=min(len(corpus), limit * 8), show_progress=False, n_threads=1
        )
        return _best(
            ((spans[int(n)], float(sc)) for n, sc in zip(found[0], scores[0], strict=True)), limit
        )

    def _current(self, name: str, editing: Path) -> _Family:
        """The family's index, rebuilt when a file other than the one being edited changed."""
        entries = [e for e in self.index.files() if family(e.language) == name]
        files = {e.path: e.sha256 for e in entries}
        old = self._families.get(name)
        if old is not None and _same(old.files, files, editing):
            return old
        spans: list[tuple[FileEntry, int]] = []
        corpus: list[list[str]] = []
        of_path: dict[Path, np.ndarray] = {}
        known = self._words.get(name, {})
        kept: dict[tuple[Path, str], list[list[str]]] = {}
        for entry in entries:
            key = (entry.path, entry.sha256)
            cut = known.get(key)
            if cut is None:
                cut = [words("\n".join(entry.lines[s : s + WINDOW])) for s in _starts(entry)]
            kept[key] = cut
            first = len(spans)
            for start, toks in zip(_starts(entry), cut, strict=True):
                if toks:
                    spans.append((entry, start))
                    corpus.append(toks)
            of_path[entry.path] = np.arange(first, len(spans))
        self._words[name] = kept  # the words of files gone or changed are dropped with them
        ranker = None
        if corpus:
            ranker = bm25s.BM25()
            ranker.index(corpus, show_progress=False)
        fam = _Family(files=files, spans=spans, of_path=of_path, ranker=ranker)
        self._families[name] = fam
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


def _starts(entry: FileEntry) -> Iterable[int]:
    return range(0, max(len(entry.lines) - STRIDE, 1), STRIDE)


def _same(built: dict[Path, str], now: dict[Path, str], editing: Path) -> bool:
    """The same files with the same texts, but for the one being edited (never searched)."""
    if built.keys() != now.keys():
        return False
    return all(sha == now[p] for p, sha in built.items() if p != editing)
