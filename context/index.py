"""The workspace index: definitions and imports of every source file, kept current.

Built in the background at start-up and updated file by file as the editor reports changes. It
skips what `.gitignore` files and the configured exclusions leave out, binary files, files over a
size limit, and symbolic links that lead out of the workspace. Excluded paths are never read.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import multiprocessing
import operator
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pathspec
from tree_sitter import Tree

from context.languages import family, for_path
from context.symbols import Definition, Import, symbols

log = logging.getLogger("airgap_lsp.context")

# Never read, never sent to a model, whatever the settings say: keys, secrets, credentials.
ALWAYS_EXCLUDED = (
    ".git/",
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh/",
    ".gnupg/",
    ".aws/",
    ".netrc",
    "*secret*",
    "*credential*",
)
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv"})
DEFAULT_MAX_FILE_BYTES = 1_000_000
# Below this many files a scan parses in this process: starting worker processes costs more.
PARALLEL_MIN_FILES = 256
CHUNK_FILES = 32  # files per task handed to a worker process
WORKER_NICENESS = 5  # the editor's requests, in the server's own process, come first
MAX_WORKERS = 8
# Files that ended their worker process (a parser's crash), left out, before the scan gives up on
# workers: past that, something other than a file is wrong.
MAX_CRASHED_FILES = 8
PARENT_CHECK_S = 1.0  # how often a worker looks whether the server is still there


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    path: Path
    language: str
    sha256: str
    definitions: tuple[Definition, ...]
    imports: tuple[Import, ...]
    lines: tuple[str, ...]  # the text, kept to cut snippets without reading the file again

    def __reduce__(self) -> tuple[Callable[..., FileEntry], tuple[object, ...]]:
        # From a scan's worker: the path and the text as strings (a path is written as its parts,
        # each parsed again; a tuple of lines is as many objects), both made again here.
        text = "\n".join(self.lines)
        return _file_entry, (
            str(self.path),
            self.language,
            self.sha256,
            self.definitions,
            self.imports,
            text,
        )


def _file_entry(
    path: str,
    language: str,
    sha256: str,
    definitions: tuple[Definition, ...],
    imports: tuple[Import, ...],
    text: str,
) -> FileEntry:
    return FileEntry(
        path=Path(path),
        language=language,
        sha256=sha256,
        definitions=definitions,
        imports=imports,
        lines=tuple(text.split("\n")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    entry: FileEntry
    definition: Definition


class Exclusions:
    """The exclusions that always apply, the administrator's and the user's, as gitignore-style
    patterns. Each list is matched on its own and a path any of them excludes is excluded: a
    negation (`!x`) re-includes only what its own list excluded, so nothing the user or a
    workspace sets can take back a built-in or a policy exclusion."""

    def __init__(self, patterns: Iterable[str] = (), *, fixed: Iterable[str] = ()) -> None:
        """`patterns`: the user's; `fixed`: the administrator's policy's."""
        groups = (ALWAYS_EXCLUDED, tuple(fixed), tuple(patterns))
        self._specs = tuple(pathspec.GitIgnoreSpec.from_lines(g) for g in groups if g)

    def matches(self, relative: str) -> bool:
        """`relative`: a POSIX path under a root, with a trailing slash for a folder."""
        return any(spec.match_file(relative) for spec in self._specs)

    def excluded(self, path: Path, roots: Iterable[Path]) -> bool:
        """`roots` resolved. The path is resolved here: a file reached through a symbolic link
        (a workspace opened by a linked folder) is judged where it is. Outside every root, the
        patterns are matched against its whole path, so `.ssh/` or `*secret*` in any folder
        name excludes it, as it would under a root."""
        path = Path(os.path.realpath(path))  # (Path.resolve raises on a symlink loop)
        for root in roots:
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            return self.matches(rel.as_posix())
        return self.matches(path.as_posix().lstrip("/"))


def entry_hash(path: Path, sha256: str) -> int:
    """One file's share of its family's digest (`WorkspaceIndex.family_digest`)."""
    return hash((path, sha256))


def scan_workers() -> int:
    """Worker processes for a scan: one per core this process may run on, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def looks_binary(data: bytes) -> bool:
    return b"\0" in data[:8192]


def read_file(path: Path, max_bytes: int) -> bytes | None:
    """A regular file's bytes; None for a link, anything but a regular file, more than
    `max_bytes` or binary. One descriptor, opened without following a link and without waiting
    on a pipe, is checked and read: what is read is what was checked, and no more than the
    limit is read even where the size on disk says 0 (as `/proc` files do)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:  # a link, deleted or unreadable since it was listed
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
                return None
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    return None if len(data) > max_bytes or looks_binary(data) else data


Ignores = list[tuple[Path, pathspec.GitIgnoreSpec]]


def walk_files(
    root: Path, exclusions: Exclusions, wanted: Callable[[Path], bool]
) -> Iterator[Path]:
    """The files under `root` that `wanted` accepts and the rules let in: no link is followed (it
    may lead out of the folder or into a loop), `.gitignore` files, the exclusions (matched
    relative to `root`) and SKIPPED_DIRS are honoured. Depth first in name order. A stack, not
    recursion: folders can nest deeper than Python's stack."""
    stack: list[tuple[Path, bool, Ignores]] = [(root, True, [])]
    while stack:
        path, is_dir, ignores = stack.pop()
        if not is_dir:
            yield path
            continue
        stack.extend(reversed(list(_children(root, path, ignores, exclusions, wanted))))


def _children(
    root: Path,
    folder: Path,
    ignores: Ignores,
    exclusions: Exclusions,
    wanted: Callable[[Path], bool],
) -> Iterator[tuple[Path, bool, Ignores]]:
    """A folder's entries that the rules let in: (path, is a folder, the rules below it)."""
    ignores = _with_gitignore(folder, ignores)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # unreadable or deleted while walking: nothing to read there
    for entry in entries:
        path = Path(entry.path)
        is_dir = entry.is_dir(follow_symlinks=False)
        if entry.is_symlink():
            continue  # a link may lead out of the folder or into a loop
        if is_dir and entry.name in SKIPPED_DIRS:
            continue
        rel = path.relative_to(root).as_posix() + ("/" if is_dir else "")
        if exclusions.matches(rel):
            continue
        if _ignored(path, is_dir, ignores):
            continue
        if is_dir:
            yield path, True, ignores
        elif entry.is_file(follow_symlinks=False) and wanted(path):
            yield path, False, ignores


def _with_gitignore(folder: Path, ignores: Ignores) -> Ignores:
    """The rules below `folder`: those above it and its own `.gitignore`'s."""
    gitignore = folder / ".gitignore"
    if gitignore.is_file():
        try:
            lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
            return [*ignores, (folder, pathspec.GitIgnoreSpec.from_lines(lines))]
        except OSError:
            pass
    return ignores


def _ignored(path: Path, is_dir: bool, ignores: Ignores) -> bool:
    return any(
        spec.match_file(path.relative_to(base).as_posix() + ("/" if is_dir else ""))
        for base, spec in ignores
    )


class WorkspaceIndex:
    """Definitions and imports by file, and by name across files. Safe to use from two threads."""

    def __init__(
        self,
        roots: Iterable[Path],
        *,
        exclude: Iterable[str] = (),
        fixed_exclude: Iterable[str] = (),
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        """`exclude`: the user's patterns; `fixed_exclude`: the policy's, which they cannot undo."""
        self.roots = tuple(Path(r).resolve() for r in roots)
        self.exclusions = Exclusions(exclude, fixed=fixed_exclude)
        self.max_file_bytes = max_file_bytes
        self._files: dict[Path, FileEntry] = {}
        self._by_name: dict[str, list[Hit]] = {}
        # file name, lower-cased -> its files, each with its place in the index's order
        self._by_file_name: dict[str, dict[Path, int]] = {}
        self._order = itertools.count()
        self._digests: dict[str, int] = {}  # language family -> digest of its files' texts
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._files)

    def file(self, path: Path) -> FileEntry | None:
        with self._lock:
            return self._files.get(path)

    def files(self) -> list[FileEntry]:
        with self._lock:
            return list(self._files.values())

    def named(self, *names: str) -> list[FileEntry]:
        """The files with one of these file names (lower-cased), in the index's order."""
        with self._lock:
            found = [
                (n, p)
                for name in dict.fromkeys(names)  # a name given twice: its files once
                for p, n in self._by_file_name.get(name, {}).items()
            ]
            return [self._files[p] for _, p in sorted(found)]

    def family_files(self, name: str) -> dict[Path, str]:
        """The files of a language family, with the sha256 of each one's text."""
        with self._lock:
            return {e.path: e.sha256 for e in self._files.values() if family(e.language) == name}

    def family_digest(self, name: str, leaving_out: Path | None = None) -> int:
        """A digest of a language family's files and texts, leaving out one file: equal
        digests, the same files with the same texts (the odds of a false match are those of
        a 64-bit hash). Kept as files change, so reading it costs nothing."""
        return self.digest(leaving_out, of_family=name)

    def digest(self, leaving_out: Path | None = None, *, of_family: str | None = None) -> int:
        """`family_digest` of one family (`of_family`), or of every family together."""
        with self._lock:
            if of_family is not None:
                digest = self._digests.get(of_family, 0)
            else:
                digest = functools.reduce(operator.xor, self._digests.values(), 0)
            entry = self._files.get(leaving_out) if leaving_out is not None else None
        if entry is not None and of_family in (None, family(entry.language)):
            digest ^= entry_hash(entry.path, entry.sha256)
        return digest

    def lookup(self, name: str) -> list[Hit]:
        """Definitions named `name` (case-insensitively: Ada and VHDL do not care about case)."""
        with self._lock:
            return list(self._by_name.get(name.lower(), ()))

    def search(self, query: str, limit: int = 200) -> list[Hit]:
        """Definitions whose name contains `query`'s characters in order (workspace/symbol)."""
        q = query.lower()
        out: list[Hit] = []
        with self._lock:
            for name, hits in self._by_name.items():
                if _subsequence(q, name):
                    out.extend(hits)
                    if len(out) >= limit:
                        break
        return out[:limit]

    def is_excluded(self, path: Path) -> bool:
        return self.exclusions.excluded(path, self.roots)

    def admits(self, path: Path) -> bool:
        """Whether the scan would index `path`: a source file inside a root, not excluded, not
        under a skipped folder, a link or a `.gitignore` rule (the editor's open documents go
        into the index by this, not by being open)."""
        path = path.resolve()
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        if root is None or for_path(path) is None or self.is_excluded(path):
            return False
        folder = root
        ignores: Ignores = []
        for part in path.relative_to(root).parts:
            ignores = _with_gitignore(folder, ignores)
            here = folder / part
            is_dir = here != path
            if (is_dir and part in SKIPPED_DIRS) or _ignored(here, is_dir, ignores):
                return False
            folder = here
        return True

    def inside(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self.roots)

    # -- writing --------------------------------------------------------------------------------
    def scan(
        self,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        workers: int = 1,
        initializer: Callable[[], None] | None = None,
        min_parallel: int = PARALLEL_MIN_FILES,
    ) -> int:
        """Index every source file under the roots; returns how many were indexed.

        With `workers` > 1 and at least `min_parallel` files, files are read and parsed in that
        many worker processes (tree-sitter holds the GIL, so threads would not help), each
        started fresh (`spawn`: never a fork of a process that runs threads), at a lower
        priority, running `initializer` first (the server's egress guard). A spawned process
        imports the main script again, so a script that scans in parallel keeps its work under
        `if __name__ == "__main__"`. Entries go in in the walk's order either way, so the index,
        and the context chosen from it, is the same. Should the workers fail, the scan goes on
        in this process."""
        paths = list(self.walk())
        done = 0
        if workers > 1 and len(paths) >= max(min_parallel, 2):
            done = self._scan_parallel(paths, progress, cancel, workers, initializer)
        for n, path in enumerate(paths[done:], done + 1):
            if cancel is not None and cancel.is_set():
                break
            try:
                self.update(path)
            except Exception:  # a parser's failure on one file costs that file, not the index
                log.exception("index: %s left out: reading it failed", path)
                self.remove(path)
            if progress is not None:
                progress(n, len(paths))
        return len(self)

    def _scan_parallel(
        self,
        paths: list[Path],
        progress: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
        workers: int,
        initializer: Callable[[], None] | None,
    ) -> int:
        """How many of `paths` (from the first) went in or were left out: all of them unless
        cancelled, or until the workers failed (none could start, a result could not be sent,
        MAX_CRASHED_FILES files killed one); the rest is for the scan to read in this
        process. A file that kills its worker (a parser's crash) is found, left out with an
        error, and new workers take the rest: read here, it would have ended the server."""
        chunks = deque(paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES))
        done = crashed = fruitless = 0
        while chunks and not (cancel is not None and cancel.is_set()):
            # After a worker died and the first chunk not in yet was not to blame, one worker
            # (with several, the first chunk not in yet is not always the one that killed it),
            # until a file is found to blame, or to the scan's end.
            alone = fruitless > 0
            pool: ProcessPoolExecutor | None = None
            try:
                pool = self._pool(1 if alone else min(workers, len(chunks)), initializer)
                futures = [pool.submit(read_entries, c, *self._reading()) for c in chunks]
            except Exception as exc:  # noqa: BLE001 - no worker could start (its start not sent)
                _reading_here(_why(exc), len(paths) - done)
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                return done
            try:
                for future in futures:  # in the walk's order
                    if cancel is not None and cancel.is_set():
                        return done
                    try:
                        results = future.result()
                    except BrokenProcessPool as exc:
                        if not _unread(exc):
                            raise  # a worker died
                        _reading_here(_not_back(exc), len(paths) - done)
                        return done
                    except Exception as exc:  # noqa: BLE001 - the rest is read here
                        # The result could not be sent (it did not pickle: a TypeError as often
                        # as a PickleError), or the task failed outside a file's reading.
                        _reading_here(_not_back(exc), len(paths) - done)
                        return done
                    self._take(results)
                    done += len(chunks.popleft())
                    if progress is not None:
                        progress(done, len(paths))
                return done
            except BrokenProcessPool:
                # A worker died: a file of the first chunk not in yet (or of one read beside
                # it) crashed it, or no worker can start at all. Reading that chunk a file at a
                # time in a worker of its own tells which; when none of its files is to blame,
                # the next round runs one worker, whose chunk is the first not in yet.
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
                chunk = chunks.popleft()
                handled, left_out, failure = self._isolate(
                    chunk, initializer, cancel, MAX_CRASHED_FILES - crashed
                )
                done += handled
                crashed += left_out
                fruitless = 0 if left_out else fruitless + 1
                if progress is not None and handled:
                    progress(done, len(paths))
                if cancel is not None and cancel.is_set():
                    return done
                if failure is None and crashed >= MAX_CRASHED_FILES:
                    failure = f"files that ended theirs: {crashed}"
                if failure is None and fruitless and alone:
                    # one worker died on a chunk none of whose files ends a worker alone: they
                    # die of something else (memory)
                    failure = "one died with no file to blame"
                if failure is not None:
                    _reading_here(failure, len(paths) - done)
                    return done
            finally:
                # Cancelled (a new index, the server's end): the workers finish the chunk they
                # are at on their own; nothing waits for them.
                if pool is not None:
                    pool.shutdown(wait=cancel is None or not cancel.is_set(), cancel_futures=True)
        return done

    def _isolate(
        self,
        chunk: list[Path],
        initializer: Callable[[], None] | None,
        cancel: threading.Event | None,
        limit: int,
    ) -> tuple[int, int, str | None]:
        """Read `chunk` one file at a time in a worker process of its own: a file whose reading
        ends the worker is left out, with an error, and a new worker goes on after it, up to
        `limit` such files. Returns how many of the chunk's files (from its first) went in or
        were left out, how many were left out, and what went wrong when a new worker failed
        otherwise (could not start, could not send a result: no file is to blame) or the
        limit was reached; then the rest is not read."""
        left_out = 0
        at = 0
        while at < len(chunk):
            if cancel is not None and cancel.is_set():
                return at, left_out, None
            if left_out >= limit:
                return at, left_out, f"files that ended theirs: {left_out}"
            try:
                pool = self._pool(1, initializer)
            except Exception as exc:  # noqa: BLE001 - no worker could start
                return at, left_out, f"a new one could not be made: {_why(exc)}"
            try:
                if isinstance(started := self._ask(pool, []), BaseException):
                    return at, left_out, f"a new one did not start: {_why(started)}"
                while at < len(chunk):
                    if cancel is not None and cancel.is_set():
                        return at, left_out, None
                    found = self._ask(pool, [chunk[at]])
                    if isinstance(found, BrokenProcessPool) and not _unread(found):
                        log.error(
                            "index: %s left out: reading it ended its worker process (the "
                            "parser crashed on it)",
                            chunk[at],
                        )
                        self.remove(Path(os.path.realpath(chunk[at])))
                        left_out += 1
                        at += 1
                        break  # a new worker for the rest
                    if isinstance(found, BaseException):
                        return at, left_out, _not_back(found)
                    self._take(found)
                    at += 1
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        return at, left_out, None

    def _ask(
        self, pool: ProcessPoolExecutor, paths: list[Path]
    ) -> list[tuple[str, FileEntry | None, str]] | BaseException:
        """A worker's `read_entries` of `paths`, or what went wrong with the worker."""
        try:
            return pool.submit(read_entries, paths, *self._reading()).result()
        except Exception as exc:  # noqa: BLE001 - the worker's failure, for the caller to judge
            return exc

    def _pool(self, workers: int, initializer: Callable[[], None] | None) -> ProcessPoolExecutor:
        """Worker processes for a scan, each started fresh (`spawn`) with `_worker_start`."""
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
            initargs=(initializer, os.getpid()),
        )

    def _reading(self) -> tuple[tuple[Path, ...], Exclusions, int]:
        """What a worker's `read_entries` needs besides the paths."""
        return self.roots, self.exclusions, self.max_file_bytes

    def _take(self, results: list[tuple[str, FileEntry | None, str]]) -> None:
        """A worker's `read_entries` results into the index."""
        for name, entry, error in results:
            if error:
                log.warning("index: %s left out: reading it failed: %s", name, error)
            self._put(entry.path if entry is not None else Path(name), entry)

    def walk(self) -> Iterator[Path]:
        """Source files under the roots that the rules let in, without following links out."""
        for root in self.roots:
            yield from walk_files(root, self.exclusions, lambda p: for_path(p) is not None)

    def update(
        self, path: Path, text: str | None = None, tree: Tree | None = None
    ) -> FileEntry | None:
        """(Re)index one file, from `text` when the editor holds it, else from disk. `tree`,
        when given, is the editor's parse of exactly that text: it is not parsed again."""
        path, entry = read_entry(
            path, self.roots, self.exclusions, self.max_file_bytes, text=text, tree=tree
        )
        self._put(path, entry)
        return entry

    def _put(self, path: Path, entry: FileEntry | None) -> None:
        """`path`'s entry replaced by `entry`; None: the file is no longer indexed."""
        with self._lock:
            self._drop(path)
            if entry is None:
                return
            self._files[path] = entry
            for d in entry.definitions:
                self._by_name.setdefault(d.name.lower(), []).append(Hit(entry=entry, definition=d))
            self._by_file_name.setdefault(path.name.lower(), {})[path] = next(self._order)
            fam = family(entry.language)
            self._digests[fam] = self._digests.get(fam, 0) ^ entry_hash(path, entry.sha256)

    def remove(self, path: Path) -> None:
        with self._lock:
            self._drop(path)

    def _drop(self, path: Path) -> None:
        old = self._files.pop(path, None)
        if old is None:
            return
        same_name = self._by_file_name.get(path.name.lower(), {})
        same_name.pop(path, None)
        if not same_name:
            self._by_file_name.pop(path.name.lower(), None)
        fam = family(old.language)
        self._digests[fam] ^= entry_hash(path, old.sha256)
        for d in old.definitions:
            key = d.name.lower()
            hits = [h for h in self._by_name.get(key, ()) if h.entry is not old]
            if hits:
                self._by_name[key] = hits
            else:
                self._by_name.pop(key, None)


def read_entry(
    path: Path,
    roots: tuple[Path, ...],
    exclusions: Exclusions,
    max_bytes: int,
    *,
    text: str | None = None,
    tree: Tree | None = None,
) -> tuple[Path, FileEntry | None]:
    """(the path resolved, its entry), from `text` when given, else from disk; the entry is None
    for a file the index does not take: not source, excluded, gone, oversized or binary."""
    path = path.resolve()  # one name per file, however the editor or the walk reached it
    language = for_path(path)
    if language is None or exclusions.excluded(path, roots):
        return path, None
    if text is None:
        tree = None  # a tree is the parse of the editor's text
        if (data := read_file(path, max_bytes)) is None:
            return path, None
    else:
        data = text.encode("utf-8", "surrogatepass")  # the editor's bytes, lone surrogates too
        if len(data) > max_bytes:
            return path, None
    tree = tree or language.parser().parse(data)
    found, imported = symbols(data, language, tree)
    return path, FileEntry(
        path=path,
        language=language.name,
        sha256=hashlib.sha256(data).hexdigest(),
        definitions=tuple(found),
        imports=tuple(imported),
        lines=tuple(data.decode("utf-8", errors="replace").split("\n")),
    )


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _unread(exc: BrokenProcessPool) -> bool:
    """Whether the pool broke because this process could not read a result back (unpickling
    it failed: the pool gives that failure as the cause), not because a worker died."""
    return exc.__cause__ is not None


def _not_back(exc: BaseException) -> str:
    """What kept a worker's result from coming back, for the log."""
    if isinstance(exc, BrokenProcessPool) and _unread(exc):
        # The cause is the failure's traceback as text: its last line names it.
        said = [ln for ln in str(exc.__cause__).splitlines() if ln.strip(" '\"")]
        return f"a result could not be read: {said[-1] if said else 'unpickling it failed'}"
    return f"a result could not be sent: {_why(exc)}"


def _reading_here(why: str, left: int) -> None:
    log.warning(
        "index: worker processes failed (%s); reading the other %d files in this process",
        why,
        left,
    )


def _worker_start(initializer: Callable[[], None] | None, server: int) -> None:
    """A scan worker's first steps: its initializer (the server's egress guard), a lower
    priority, stdin and stdout away from the editor's pipes (a worker must never read the
    server's requests or write into its LSP stream; stderr stays, for what the guard or a
    crash has to say), and an end of its own when the server (`server`, its process id) is
    gone: killed, it leaves its workers waiting for work that will never come."""
    if initializer is not None:
        initializer()
    os.nice(WORKER_NICENESS)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    threading.Thread(target=_end_with, args=(server,), name="airgap-orphan", daemon=True).start()


def _end_with(server: int) -> None:
    """Exit once this process's parent is no longer `server` (it ended, even before this
    worker started: the worker was then handed to another parent)."""
    while os.getppid() == server:
        threading.Event().wait(PARENT_CHECK_S)
    os._exit(0)


def read_entries(
    paths: list[Path], roots: tuple[Path, ...], exclusions: Exclusions, max_bytes: int
) -> list[tuple[str, FileEntry | None, str]]:
    """`read_entry` for each of `paths`, from disk (a scan's task in a worker process), with
    what went wrong where reading a file failed (that file is left out; the others are not).
    Paths go back as strings (an entry holds its own): a pickled path is parsed part by part."""
    out: list[tuple[str, FileEntry | None, str]] = []
    for path in paths:
        try:
            resolved, entry = read_entry(path, roots, exclusions, max_bytes)
            out.append((str(resolved), entry, ""))
        except Exception as exc:  # noqa: BLE001 - sent back and logged by the server
            out.append((str(path), None, f"{type(exc).__name__}: {exc}"))
    return out


def _subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)
