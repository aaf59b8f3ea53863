"""Which lines of the workspace go into a prompt, under a token budget.

In the order they take the budget (`ORDER`, chosen on the quality benchmark):
1. passages of the knowledge-base folders the settings or the policy name;
2. windows of the workspace's files (and of open documents from outside it) most similar to the
   lines around the cursor, ranked by BM25 (`context.similar`);
3. the unit's other half: an Ada body's spec, a VHDL architecture's entity, a C file's header;
4. the definitions, in other files, of the identifiers around the cursor (with SPARK contracts),
   whole where they are short;
5. the specs of the units the file imports (Ada `with` -> the `.ads`, VHDL `use work.pkg` -> the
   package declaration, Python imports, C includes).
Each snippet carries its provenance (path, lines, sha256 of its text) into the audit line.

The choice is kept while the user works in one place (`ContextRequest.keep_lines`) and its best
snippet is still the best: the prompt's start, and so the key/values the engine keeps from the
request before, then survives a new line, where the lower-ranked snippets of a choice made again
for the moved region would change and have the whole prompt read again.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from context.index import FileEntry, WorkspaceIndex, read_file, walk_files
from context.languages import Language, family, for_path
from context.prompt import Snippet
from context.similar import SimilarCode
from context.symbols import Import, imports
from context.text import first_code_line

log = logging.getLogger("airgap_lsp.context")

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
SPEC_SUFFIXES = frozenset({".ads", ".h", ".hh", ".hpp", ".hxx", ".pyi", ".vh", ".svh"})
MAX_SNIPPET_LINES = 60
MIN_SNIPPET_TOKENS = 8  # below this much budget left, stop looking
MAX_CHARS_PER_TOKEN = 8  # no tokenizer packs more; a cheap bound before counting
SIMILAR_WINDOWS = 4
REGION_BEFORE, REGION_AFTER = 15, 3  # the lines around the cursor that context is chosen for
DECLARATION_LINES = 12  # a definition this short goes into the context whole
# The definitions of one name looked at, the nearest by folder: a name defined in a thousand files
# (`Reset`, `Initialize`) would otherwise cost a thousand token counts in one request.
DEFINITIONS_PER_NAME = 64
# A file's other half, by suffix (VHDL finds an architecture's entity by name).
OTHER_HALF = {
    ".adb": (".ads",),
    ".c": (".h",),
    ".cc": (".h", ".hh", ".hpp"),
    ".cpp": (".h", ".hh", ".hpp", ".hxx"),
    ".cxx": (".h", ".hh", ".hpp", ".hxx"),
    ".py": (".pyi",),
}
ARCHITECTURE_OF = re.compile(r"^\s*architecture\s+\w+\s+of\s+(\w+)", re.IGNORECASE | re.MULTILINE)
# Which context takes the budget first. Code: the first chosen goes last in the prompt, nearest
# the cursor; the knowledge base's prose (the administrator named it: it always goes in) above
# it all. Measured (docs/benchmarks-quality.md, 180 positions in Ada, SPARK and VHDL): similar
# code before definitions was right at 62 against 37 after them; the unit's other half before
# similar code did no better than after it (64 and 63 of 180 at 512 tokens, 68 and 70 at 1,024)
# and made the prompts longer: it takes what budget similar code leaves.
ORDER = ("knowledge", "similar", "own", "definitions", "imported")
KB_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt", ".adoc"})
# A scan's bounds: a folder of coding standards and design notes is far below both.
KB_MAX_FILES = 5_000
KB_MAX_BYTES = 16_000_000
# Remembered across requests: the token counts of snippet texts (the same candidates come back at
# every keystroke in one region) and the workspace-relative names of files.
COUNTS_KEPT = 8_192
NAMES_KEPT = 65_536
CHOICES_KEPT = 64  # documents whose last choice of context is kept (`keep_lines`)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextRequest:
    path: Path
    text: str
    cursor_line: int
    budget_tokens: int
    recent: tuple[tuple[Path, str], ...] = ()  # other open documents, most recent first
    # The last choice for this document is kept while the cursor stays within this many lines
    # of where it was made (and the document has not gained or lost more lines than that), as
    # long as nothing else it was chosen from changed and its best snippet (the last, nearest
    # the cursor) is the one a choice made now would put there; 0: chosen afresh every time.
    keep_lines: int = 0
    # Where `text` is a window of a larger document (an oversized one, read around the cursor):
    # the cursor's line and the line count of the whole document, by which keep_lines measures
    # how far the cursor and the document moved; None: `cursor_line` and `text`'s own.
    place: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Choice:
    """A document's last choice of context, and what it was chosen from."""

    line: int  # the cursor's line
    lines: int  # the document's line count
    inputs: tuple[object, ...]  # all the choice read but the lines around the cursor
    counter: Callable[[], Callable[[str], int] | None]
    snippets: tuple[Snippet, ...]


def _snippet(
    path: Path, start: int, lines: Sequence[str], root_of: Callable[[Path], str]
) -> Snippet:
    text = "\n".join(lines[:MAX_SNIPPET_LINES]).rstrip()
    return Snippet(
        path=root_of(path),
        start_line=start,
        end_line=start + min(len(lines), MAX_SNIPPET_LINES) - 1,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def identifiers(text: str) -> set[str]:
    return {m.group(0).lower() for m in IDENT.finditer(text)}


def cursor_region(text: str, cursor_line: int) -> str:
    """The lines around the cursor that context is chosen for, without the cursor's own: while
    the user types on one line the context, and so the prompt's start and its cached keys and
    values, stays the same (measured for similar code: the same exact match as with the line,
    62 of 180)."""
    lines = text.split("\n")
    return "\n".join(
        lines[max(0, cursor_line - REGION_BEFORE) : cursor_line]
        + lines[cursor_line + 1 : cursor_line + REGION_AFTER]
    )


class ContextBuilder:
    """Builds the snippets for one prompt from the index, open documents and knowledge base."""

    def __init__(
        self,
        index: WorkspaceIndex,
        knowledge: KnowledgeBase | None = None,
        *,
        background: bool = False,
    ) -> None:
        """`background`: rebuild the similar-code ranker off the completion's path (the server)."""
        self.index = index
        self.knowledge = knowledge
        self.similar = SimilarCode(index, background=background)
        self._names: dict[Path, str] = {}
        self._counts: dict[bytes, int] = {}  # a text's digest -> its token count
        self._counter: Callable[[], Callable[[str], int] | None] = lambda: None
        self._choices: dict[Path, _Choice] = {}
        # The last text parsed for its imports (a file the index does not hold), and them.
        self._parsed: tuple[str, str, tuple[Import, ...]] | None = None
        self._lock = threading.Lock()

    def relative(self, path: Path) -> str:
        """The path relative to its workspace root, or its file name outside the workspace."""
        if (name := self._names.get(path)) is not None:
            return name
        name = path.name
        for root in self.index.roots:
            if path.is_relative_to(root):
                name = path.relative_to(root).as_posix()
                break
        with self._lock:
            if len(self._names) >= NAMES_KEPT:
                self._names.clear()
            self._names[path] = name
        return name

    def _count(self, count_tokens: Callable[[str], int], text: str) -> int:
        """`count_tokens(text)`, remembered while the counter stays the same (a model's
        tokenizer does not change; a new model brings a new counter, and the counts start
        again). An engine's counter is held weakly: the cache keeps no replaced model alive."""
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            if self._counter() != count_tokens:
                self._counts.clear()
                self._counter = _held(count_tokens)
            n = self._counts.get(key)
        if n is not None:
            return n
        n = count_tokens(text)
        with self._lock:
            if self._counter() == count_tokens:  # not another model's meanwhile
                if len(self._counts) >= COUNTS_KEPT:
                    self._counts.clear()
                self._counts[key] = n
        return n

    def build(self, req: ContextRequest, count_tokens: Callable[[str], int]) -> tuple[Snippet, ...]:
        if req.budget_tokens <= 0 or self.index.is_excluded(req.path):
            return ()
        if req.keep_lines <= 0 or (language := for_path(req.path)) is None:
            return self._choose(req, count_tokens)
        path = req.path.resolve()
        line, lines = req.place or (req.cursor_line, req.text.count("\n") + 1)
        outside = self._outside(req, language)
        inputs = self._inputs(req, language, path, outside)
        with self._lock:
            kept = self._choices.get(path)
        snippets = self._choose(req, count_tokens, outside)
        fam = family(language.name)
        if (
            kept is not None
            and kept.inputs == inputs
            # and nothing changed while this choice was made
            and inputs[1:3] == (self.index.digest(leaving_out=path), self.similar.state(fam))
            and kept.counter() == count_tokens
            and abs(line - kept.line) <= req.keep_lines
            and abs(lines - kept.lines) <= req.keep_lines
            and snippets[-1:] == kept.snippets[-1:]
        ):
            # The best snippet, the one nearest the cursor, is still the one chosen then: the
            # rest of that choice is kept with it. The place it was made stays the anchor.
            return kept.snippets
        choice = _Choice(
            line=line,
            lines=lines,
            inputs=inputs,
            counter=_held(count_tokens),
            snippets=snippets,
        )
        with self._lock:
            self._choices.pop(path, None)
            if len(self._choices) >= CHOICES_KEPT:
                del self._choices[next(iter(self._choices))]  # the oldest
            self._choices[path] = choice
        return snippets

    def forget(self, path: Path) -> None:
        """The document was closed: its next request chooses afresh."""
        with self._lock:
            self._choices.pop(path.resolve(), None)

    def _inputs(
        self,
        req: ContextRequest,
        language: Language,
        path: Path,
        outside: list[tuple[Path, str]],
    ) -> tuple[object, ...]:
        """What a choice reads besides the lines around the cursor: equal, and the same lines
        would be chosen again. The other files (the index's digest: an import resolved by name
        may find a file of another language family), the similar-code ranker's build, the
        file's own imports (and a VHDL file's architectures), the open documents from outside
        the workspace (`outside`), the knowledge base's last scan, and the budget. `path`: the
        file's, resolved."""
        fam = family(language.name)
        found = self._file_imports(req, language, path)
        opened = hashlib.blake2b(digest_size=16)
        for other, text in outside:
            opened.update(f"{other}\0{len(text)}\0".encode("utf-8", "surrogatepass"))
            opened.update(text.encode("utf-8", "surrogatepass"))
        return (  # the index and the ranker first: `build` reads them again after its choice
            req.budget_tokens,
            self.index.digest(leaving_out=path),
            self.similar.state(fam),
            tuple((i.name, i.kind) for i in found),
            tuple(ARCHITECTURE_OF.findall(req.text)) if language.name == "vhdl" else (),
            opened.digest(),
            self.knowledge.scans if self.knowledge else 0,
        )

    def _choose(
        self,
        req: ContextRequest,
        count_tokens: Callable[[str], int],
        outside: list[tuple[Path, str]] | None = None,
    ) -> tuple[Snippet, ...]:
        """The context for the request; `outside`: its open documents from outside the workspace,
        where the caller has them already."""
        region = cursor_region(req.text, req.cursor_line)
        wanted = identifiers(region)
        groups: dict[str, Callable[[], Iterable[Snippet]]] = {
            "definitions": lambda: self._definitions(req, region),
            "imported": lambda: self._imported(req),
            "own": lambda: self._other_half(req),
            "similar": lambda: self._similar(req, region, outside),
            "knowledge": lambda: self.knowledge.passages(wanted) if self.knowledge else (),
        }
        candidates = ((g, snip) for g in ORDER for snip in groups[g]())
        chosen: list[Snippet] = []
        passages: list[Snippet] = []
        used = 0
        for group, snip in candidates:
            left = req.budget_tokens - used
            if left < MIN_SNIPPET_TOKENS:
                break
            # A token is at least one character here; skip what cannot fit without tokenizing.
            if len(snip.text) // MAX_CHARS_PER_TOKEN > left or any(
                _covers(c, snip) for c in (*chosen, *passages)
            ):
                continue
            cost = self._count(count_tokens, f"{snip.path}\n{snip.text}\n") + 2
            if cost > left:
                continue
            (passages if group == "knowledge" else chosen).append(snip)
            used += cost
        # The model reads top-down: prose first, then the code, the first chosen last, nearest
        # the cursor.
        return (*passages, *reversed(chosen))

    def _definitions(self, req: ContextRequest, region: str) -> Iterable[Snippet]:
        """Definitions in other files of the same language family of the names used near the
        cursor, nearest use first."""
        language = for_path(req.path)
        same = family(language.name) if language else None
        seen: set[str] = set()
        names = [m.group(0) for m in IDENT.finditer(region)]
        for name in reversed(names):
            key = name.lower()
            if key in seen:
                continue
            seen.add(key)
            hits = [
                h
                for h in self.index.lookup(name)
                if h.entry.path != req.path and (same is None or family(h.entry.language) == same)
            ]
            if len(hits) > DEFINITIONS_PER_NAME:
                # The nearest by folder, kept in the index's order (a file indexed again from
                # the editor goes to the end of that order: it is not the first to be cut).
                here = req.path.resolve().parent.parts
                near = sorted(
                    range(len(hits)), key=lambda i: -_shared(here, hits[i].entry.path.parent.parts)
                )[:DEFINITIONS_PER_NAME]
                hits = [hits[i] for i in sorted(near)]
            for hit in hits:
                d = hit.definition
                # Whole lines (provenance names exact lines): all of a short declaration (a
                # spec with its contract, a record, an entity's ports), else its signature.
                n = d.end_line - d.start_line + 1
                if n > DECLARATION_LINES:
                    n = len(d.signature.split("\n"))
                lines = hit.entry.lines[d.start_line : d.start_line + n]
                yield _snippet(hit.entry.path, d.start_line, lines, self.relative)

    def _file_imports(
        self, req: ContextRequest, language: Language, path: Path
    ) -> tuple[Import, ...]:
        """The imports of the file being edited (`path`: its, resolved). The index holds them
        when it holds the file (refreshed before each completion); a file it does not hold (from
        outside the workspace, or over its size limit) is parsed, once per text: a request that
        keeps its context asks twice, for the keep's inputs and for the imported specs."""
        if (entry := self.index.file(path)) is not None:
            return entry.imports
        last = self._parsed
        if last is not None and last[0] is req.text and last[1] == language.name:
            return last[2]
        found = tuple(imports(req.text.encode(), language))
        self._parsed = (req.text, language.name, found)
        return found

    def _imported(self, req: ContextRequest) -> Iterable[Snippet]:
        language = for_path(req.path)
        if language is None:
            return
        for imp in self._file_imports(req, language, req.path.resolve()):
            for entry in self.resolve(imp.name, language.name, req.path):
                if entry.path == req.path:
                    continue
                if entry.path.suffix.lower() in SPEC_SUFFIXES:
                    start = first_code_line(entry.lines, language.line_comment)
                    yield _snippet(entry.path, start, entry.lines[start:], self.relative)
                else:
                    for d in entry.definitions:
                        if d.kind in ("package", "module", "entity") or len(entry.definitions) < 8:
                            yield _snippet(
                                entry.path,
                                d.start_line,
                                entry.lines[d.start_line : d.end_line + 1],
                                self.relative,
                            )

    def _other_half(self, req: ContextRequest) -> Iterable[Snippet]:
        """The unit's other half: an Ada body's spec, a C file's header, a VHDL architecture's
        entity, a Python module's stub."""
        language = for_path(req.path)
        if language is None:
            return
        suffix = req.path.suffix.lower()
        if language.name == "vhdl":
            # in order of appearance: a set's order changes from one process to the next
            names = dict.fromkeys(m.lower() for m in ARCHITECTURE_OF.findall(req.text))
            for name in names:
                for hit in self.index.lookup(name):
                    d = hit.definition
                    if d.kind == "entity" and hit.entry.path != req.path:
                        lines = hit.entry.lines[d.start_line : d.end_line + 1]
                        yield _snippet(hit.entry.path, d.start_line, lines, self.relative)
            return
        halves = OTHER_HALF.get(suffix, ())
        if not halves:
            return
        stem = req.path.stem.lower()
        here = req.path.resolve().parent.parts
        # The nearest by folder: the most leading folders shared with the file being edited.
        ranked = sorted(
            (
                (_shared(here, f.path.parent.parts), f)
                for f in self.index.named(*(stem + half for half in halves))
            ),
            key=lambda sf: -sf[0],
        )
        if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
            return  # none, or two as near (a `utils.h` in each of two libraries): no guess
        entry = ranked[0][1]
        start = first_code_line(entry.lines, language.line_comment)
        yield _snippet(entry.path, start, entry.lines[start:], self.relative)

    def resolve(self, unit: str, language: str, importer: Path) -> list[FileEntry]:
        """The indexed files that define an imported unit."""
        parts = [p for p in re.split(r"[./:]+", unit) if p and p not in ("work", "all")]
        if not parts:
            return []
        if language == "ada":
            gnat = "-".join(parts).lower() + ".ads"  # GNAT's file naming: Foo.Bar -> foo-bar.ads
            found = self.index.named(gnat)
            if found:
                return found
        if language in ("c", "cpp", "verilog", "systemverilog"):
            tail = PurePosixPath(unit).name
            return [f for f in self.index.named(tail.lower()) if f.path.name == tail]
        if language == "python":
            stem = "/".join(parts)
            return [
                f
                for f in self.index.named(f"{parts[-1]}.py".lower(), "__init__.py")
                if f.path.as_posix().endswith((f"/{stem}.py", f"/{stem}/__init__.py"))
            ]
        last = parts[-1].lower()
        kinds = ("package", "module", "entity", "namespace", "class", "interface")
        return list(
            {
                h.entry.path: h.entry for h in self.index.lookup(last) if h.definition.kind in kinds
            }.values()
        )

    def _similar(
        self, req: ContextRequest, region: str, outside: list[tuple[Path, str]] | None = None
    ) -> Iterable[Snippet]:
        """Windows of the workspace's files of the same language family most similar to the
        cursor's region, then of open documents from outside the workspace."""
        language = for_path(req.path)
        if language is None:
            return []
        try:
            found = self.similar.search(req.path.resolve(), language.name, region, SIMILAR_WINDOWS)
        except Exception:  # a ranker's failure costs this context, not the completion
            log.exception("similar code left out of this prompt: the search failed")
            found = []
        if outside is None:
            outside = self._outside(req, language)
        if outside:
            # Scores of two indexes do not compare: take the best of each in turn.
            try:
                more = SimilarCode.search_texts(outside, region, SIMILAR_WINDOWS)
            except Exception:
                log.exception("open documents from outside the workspace left out: search failed")
                more = []
            found = [w for pair in itertools.zip_longest(found, more) for w in pair if w]
        return [_snippet(w.path, w.start, w.lines, self.relative) for w in found]

    def _outside(self, req: ContextRequest, language: Language) -> list[tuple[Path, str]]:
        """The open documents from outside the workspace of the file's language family."""
        return [
            (path, text)
            for path, text in req.recent
            if path != req.path
            and not self.index.inside(path.resolve())
            and not self.index.is_excluded(path)
            and (other := for_path(path)) is not None
            and family(other.name) == family(language.name)
        ]


def _held(count_tokens: Callable[[str], int]) -> Callable[[], Callable[[str], int] | None]:
    """A reference to a counter: weak to an engine's method (a replaced model is not kept
    alive), strong to anything else (a function; a method of an object that has no weak
    references)."""
    if inspect.ismethod(count_tokens):
        try:
            return weakref.WeakMethod(count_tokens)
        except TypeError:
            pass
    return lambda: count_tokens


def _shared(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many leading path parts two folders share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _covers(a: Snippet, b: Snippet) -> bool:
    return a.path == b.path and a.start_line <= b.start_line and b.end_line <= a.end_line


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeRead:
    """What a knowledge-base scan read, and the limit that stopped it, if one did."""

    files: int
    size: int  # bytes
    skipped: int  # binary, over the size limit, or gone since listed
    limit: str = ""  # empty: every file the rules let in was read

    def summary(self) -> str:
        said = f"{self.files} knowledge-base files read ({self.size:,} bytes)"
        if self.skipped:
            said += f", {self.skipped} skipped (binary, too large or unreadable)"
        return f"{said}; {self.limit}" if self.limit else said


class KnowledgeBase:
    """Passages of Markdown, reStructuredText and plain-text files in administrator-named folders:
    coding standards, design notes. Split at headings and blank lines, ranked by overlap.

    Read as the workspace is (`context.index`): no link is followed, the exclusions and the
    built-in secret list hold, binary and oversized files are skipped. A scan is bounded in
    files and bytes, since a folder may be as large as `/usr`; it runs in a worker thread, and
    `passages` answers from what the last finished scan read."""

    def __init__(
        self,
        folders: Iterable[Path],
        index: WorkspaceIndex,
        *,
        max_files: int = KB_MAX_FILES,
        max_bytes: int = KB_MAX_BYTES,
    ) -> None:
        """`folders` absolute (a relative one would be read from wherever the server started);
        `index`: the workspace's, whose exclusions and file size limit apply here too."""
        expanded = [os.path.expanduser(f) for f in folders]
        if relative := [f for f in expanded if not os.path.isabs(f)]:
            raise ValueError(f"knowledge-base folders must be absolute paths, not {relative}")
        self.folders = tuple(Path(os.path.realpath(f)) for f in expanded)
        self.index = index
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._passages: list[tuple[set[str], Snippet]] = []
        self.scans = 0  # finished scans: what `passages` answers from changes with each

    def scan(
        self,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> KnowledgeRead:
        """Read the folders, at most `max_files` files (those skipped count) and `max_bytes`
        bytes of text; `progress(files, bytes)` after each file read."""
        passages: list[tuple[set[str], Snippet]] = []
        files = size = skipped = 0
        limit = ""
        for folder, path in self._walk():
            if cancel is not None and cancel.is_set():
                limit = "cancelled"
                break
            if files + skipped == self.max_files:  # a skipped file was opened too
                limit = f"stopped at the limit of {self.max_files:,} files; the rest is left out"
                break
            data = read_file(path, self.index.max_file_bytes)
            if data is None:
                skipped += 1
                continue
            if size + len(data) > self.max_bytes:
                limit = f"stopped at the limit of {self.max_bytes:,} bytes; the rest is left out"
                break
            files += 1
            size += len(data)
            passages.extend(_passages(folder, path, data.decode("utf-8", errors="replace")))
            if progress is not None:
                progress(files, size)
        self._passages = passages  # one assignment: a reader sees the old list or the new
        self.scans += 1
        return KnowledgeRead(files=files, size=size, skipped=skipped, limit=limit)

    def _walk(self) -> Iterator[tuple[Path, Path]]:
        """(folder, file) for each passage file the workspace's rules let in, the exclusions
        matched both under the folder and as the index judges the path."""
        index = self.index
        for folder in self.folders:
            for path in walk_files(folder, index.exclusions, _is_passage_file):
                if not index.is_excluded(path):
                    yield folder, path

    def passages(self, wanted: set[str], limit: int = 2) -> list[Snippet]:
        scored = [
            (len(ids & wanted) / len(ids | wanted), snip)
            for ids, snip in self._passages
            if ids and wanted and ids & wanted
        ]
        scored.sort(key=lambda s: -s[0])
        return [s for _, s in scored[:limit]]


def _is_passage_file(path: Path) -> bool:
    return path.suffix.lower() in KB_SUFFIXES


def _passages(folder: Path, path: Path, text: str) -> Iterator[tuple[set[str], Snippet]]:
    """A file's passages: split at headings, and at a blank line after 30 lines."""
    lines = text.split("\n")
    rel = lambda p: f"{folder.name}/{p.relative_to(folder).as_posix()}"  # noqa: E731
    start = 0
    for i in range(len(lines) + 1):
        end = i == len(lines)
        heading = not end and lines[i].startswith(("#", "=====", "-----")) and i > start
        if end or heading or (i - start >= 30 and not lines[i].strip()):
            chunk = lines[start:i]
            if "".join(chunk).strip():
                yield identifiers("\n".join(chunk)), _snippet(path, start, chunk, rel)
            start = i
