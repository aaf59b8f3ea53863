"""The quality benchmark's code and cursor positions (bench/quality.py).

Projects are folders of code that nobody here wrote: each sub-folder of a corpus folder (by
default `../shared/corpus`, pinned Ada, SPARK and VHDL projects; a site can point it at its own
code), and Python and C packages that Debian ships (`bench/setup-corpus.sh` unpacks them). Each
project is opened as its own workspace folder, where it lies, and is never copied.

A position is a line of code cut where a user could be typing it:
- at the start of an indented line (3 positions in 5): the cursor after the indentation, the
  expected answer the whole line's code;
- mid-line (the other 2): the cursor at a character drawn uniformly from the second character of
  the line's code to its last (inside a word, after a blank or after an operator alike), the
  expected answer the rest of the line.
The document sent is the file with the rest of that line removed; the lines after it are kept.
The line carries code: no comment or string at the cursor nor at its end, and an identifier that
is not a keyword in the expected answer (so never `end;`, `begin`, `}` or `else:`).
Lines with non-ASCII text are left out (LSP columns count UTF-16 units), and so are files whose
first lines say a tool generated them.

Each language takes its projects in a seeded order and its positions from them in turn: from all
of them in a full run, from one per 4 positions (at least 3) in a short one, since each project
costs two server starts and indexes.
"""

from __future__ import annotations

import keyword
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import corpus
from tree_sitter import Tree

from context.index import Exclusions
from context.languages import for_path

LANGUAGES = ("Ada", "SPARK", "VHDL", "Python", "C")
LSP_ID = {"Ada": "ada", "SPARK": "ada", "VHDL": "vhdl", "Python": "python", "C": "c"}
# The files a language's context comes from: a SPARK position reads Ada files, SPARK or not.
FAMILY = {"Ada": "ada", "SPARK": "ada", "VHDL": "vhdl", "Python": "python", "C": "c"}
FAMILY_SUFFIXES = {
    "ada": (".ads", ".adb"),
    "vhdl": (".vhd", ".vhdl"),
    "python": (".py",),
    "c": (".c", ".h"),
}
CURSOR_SUFFIXES = {
    "ada": (".ads", ".adb"),
    "vhdl": (".vhd", ".vhdl"),
    "python": (".py",),
    "c": (".c",),
}
CASE_INSENSITIVE = frozenset({"ada", "vhdl"})
LINE_COMMENT = {"ada": "--", "vhdl": "--", "python": "#", "c": "//"}

MIN_PROJECTS, PER_PROJECT = 3, 4
LINE_START, MID_LINE = "line start", "mid-line"
KINDS = (LINE_START, MID_LINE)
# 3 in 5 at a line start, the rest mid-line, interleaved so that a short run keeps the ratio.
KIND_CYCLE = (LINE_START, MID_LINE, LINE_START, MID_LINE, LINE_START)

# Python and C from Debian: (language, role in bench/setup-corpus.sh, folder under its sources).
DEBIAN = (
    ("Python", "python", "asyncio"),
    ("Python", "python", "email"),
    ("Python", "docutils", "."),
    ("Python", "jinja2", "."),
    ("C", "jool", "."),
    ("C", "apfs", "."),
    ("C", "ovpn-dco", "."),
    ("C", "xtables-addons", "."),
)

# A generator's mark in a file's first lines ("This file was generated ...", "DO NOT EDIT").
GENERATED = re.compile(
    r"auto-?generated|automatically generated|generated automatically|do not (?:edit|modify)"
    r"|(?:file|spec|package|code|module) (?:was |is |has been )?generated (?:by|from|on)\b",
    re.IGNORECASE,
)
HEADER_LINES = 40
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

ADA_KEYWORDS = """abort abs abstract accept access aliased all and array at begin body case
constant declare delay delta digits do else elsif end entry exception exit for function generic
goto if in interface is limited loop mod new not null of or others out overriding package
parallel pragma private procedure protected raise range record rem renames requeue return
reverse select separate some subtype synchronized tagged task terminate then type until use
when while with xor"""
VHDL_KEYWORDS = """abs access after alias all and architecture array assert assume attribute
begin block body buffer bus case component configuration constant context cover default
disconnect downto else elsif end entity exit fairness file for force function generate generic
group guarded if impure in inertial inout is label library linkage literal loop map mod nand new
next nor not null of on open or others out package parameter port postponed procedure process
property protected pure range record register reject release rem report restrict return rol ror
select sequence severity signal shared sla sll sra srl strong subtype then to transport type
unaffected units until use variable vmode vprop vunit wait when while with xnor xor"""
C_KEYWORDS = """auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary _Static_assert _Alignas
_Alignof _Noreturn _Thread_local NULL"""
KEYWORDS = {
    "ada": frozenset(re.findall(r"\S+", ADA_KEYWORDS)),
    "vhdl": frozenset(re.findall(r"\S+", VHDL_KEYWORDS)),
    "python": frozenset([*keyword.kwlist, *keyword.softkwlist]),
    "c": frozenset(re.findall(r"\S+", C_KEYWORDS)),
}


class MissingCorpus(RuntimeError):
    """A corpus folder or a Debian role that a requested language needs is not there."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    name: str
    root: Path  # the workspace folder, resolved
    origin: str  # "corpus" or the Debian packages it was unpacked from
    languages: tuple[str, ...]  # the languages whose positions may be drawn here


@dataclass(slots=True, kw_only=True)
class Files:
    """A project's files by language: where positions go, and what context is read from."""

    cursor: dict[str, list[Path]] = field(default_factory=dict)  # language -> files
    family: dict[str, list[Path]] = field(default_factory=dict)  # family -> files
    generated: int = 0  # files left out of the positions as generated


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    language: str
    project: Project
    kind: str  # LINE_START or MID_LINE
    cut: corpus.Position  # path, line, character, the document as sent, the removed rest

    @property
    def typed(self) -> str:
        return self.cut.text.split("\n")[self.cut.line]

    @property
    def prefix(self) -> str:
        """The document's text before the cursor."""
        lines = self.cut.text.split("\n")
        return "\n".join([*lines[: self.cut.line], lines[self.cut.line][: self.cut.character]])

    @property
    def relative(self) -> str:
        return self.cut.path.relative_to(self.project.root).as_posix()


def corpus_projects(folder: Path) -> list[Project]:
    """Each sub-folder of the corpus folder is a project."""
    if not folder.is_dir():
        raise MissingCorpus(
            f"no corpus folder at {folder}: give --corpus DIR, a folder of project folders "
            "(the default is ../shared/corpus beside the repository)"
        )
    projects = [
        Project(name=d.name, root=d.resolve(), origin="corpus", languages=LANGUAGES)
        for d in sorted(folder.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    ]
    if not projects:
        raise MissingCorpus(f"the corpus folder {folder} holds no project folder")
    return projects


def debian_projects(languages: Iterable[str]) -> tuple[list[Project], list[tuple[str, str]]]:
    """The Debian projects of the requested languages, and (language, role) of those missing."""
    found, missing = [], []
    for language, role, folder in DEBIAN:
        if language not in languages:
            continue
        try:
            base = corpus.source_root(role)
        except corpus.MissingCorpus:
            missing.append((language, role))
            continue
        root = base if folder == "." else base / folder
        if not root.is_dir():
            missing.append((language, f"{role} ({folder})"))
            continue
        name = role if folder == "." else f"{role}-{folder}"
        packages = ", ".join(corpus.packages(role)) or role
        found.append(
            Project(name=name, root=root.resolve(), origin=packages, languages=(language,))
        )
    return found, missing


def scan(project: Project) -> Files:
    """The project's files by language; what the server would never read is left out."""
    files = Files()
    never = Exclusions()  # the server's built-in exclusions (secrets, keys): never in a prompt
    suffixes = {s: fam for fam, ss in FAMILY_SUFFIXES.items() for s in ss}
    for path in sorted(project.root.rglob("*")):
        family = suffixes.get(path.suffix.lower())
        if family is None or path.is_symlink() or not path.is_file():
            continue
        if never.excluded(path, [project.root]):
            continue
        files.family.setdefault(family, []).append(path)
        if path.suffix.lower() not in CURSOR_SUFFIXES[family]:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        language = {"vhdl": "VHDL", "python": "Python", "c": "C"}.get(family)
        if family == "ada":
            language = "SPARK" if corpus.SPARK_ON.search(text) else "Ada"
        if language not in project.languages:
            continue
        if GENERATED.search("\n".join(text.split("\n", HEADER_LINES)[:HEADER_LINES])):
            files.generated += 1
            continue
        files.cursor.setdefault(language, []).append(path)
    return files


class _File:
    """One file's lines and the lines of code a position may take, found when first asked."""

    def __init__(self, path: Path, family: str) -> None:
        self.path, self.family = path, family
        self.lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        lang = for_path(path)
        source = "\n".join(self.lines).encode("utf-8")
        self.tree: Tree | None = lang.parser().parse(source) if lang else None
        self.used: set[int] = set()
        self.candidates: dict[str, list[int]] = {k: [] for k in KINDS}
        for i, line in enumerate(self.lines):
            code = line.rstrip()
            body = code.lstrip()
            indent = len(code) - len(body)
            if not body or not line.isascii() or self.prose(i, len(code)):
                continue
            if body.startswith(LINE_COMMENT[family]) or not carries_identifier(body, family):
                continue
            if indent > 0 and not self.prose(i, indent + 1):
                self.candidates[LINE_START].append(i)
            if len(body) >= 3:
                self.candidates[MID_LINE].append(i)

    def prose(self, line: int, character: int) -> bool:
        """Whether the character before `character` is in a comment or a string."""
        return self.tree is not None and corpus.in_prose(self.tree.root_node, line, character)

    def columns(self, i: int) -> list[int]:
        """Mid-line cursor columns on line `i`: after the code's first character, before its
        last, outside comments and strings, with an identifier left to type."""
        code = self.lines[i].rstrip()
        indent = len(code) - len(code.lstrip())
        return [
            c
            for c in range(indent + 1, len(code))
            if carries_identifier(code[c:], self.family) and not self.prose(i, c)
        ]

    def take(self, kind: str, rng: random.Random) -> tuple[int, int] | None:
        """A line not taken yet and the cursor's column on it; None when none is left."""
        free = [i for i in self.candidates[kind] if i not in self.used]
        rng.shuffle(free)
        for i in free:
            code = self.lines[i].rstrip()
            if kind == LINE_START:
                self.used.add(i)
                return i, len(code) - len(code.lstrip())
            columns = self.columns(i)
            if columns:
                self.used.add(i)
                return i, rng.choice(columns)
        return None


def carries_identifier(text: str, family: str) -> bool:
    words = IDENTIFIER.findall(text)
    if family in CASE_INSENSITIVE:
        words = [w.lower() for w in words]
    return any(w not in KEYWORDS[family] for w in words)


def cut_at(path: Path, lines: list[str], i: int, column: int) -> corpus.Position:
    """The document with the rest of line `i` from `column` removed."""
    line = lines[i]
    text = "\n".join([*lines[:i], line[:column], *lines[i + 1 :]])
    return corpus.Position(
        path=path, line=i, character=column, text=text, target=line[column:].rstrip("\r")
    )


def sample(
    projects: list[Project],
    files: dict[str, Files],
    language: str,
    n: int,
    seed: int,
) -> list[Position]:
    """`n` positions of one language, spread over its projects in turn (the same number from
    each, as far as each has them) and over each project's files in turn (so that a project
    of many small programs gives many programs, not the largest file's lines)."""
    rng = random.Random(f"{seed}:{language}")
    holders = [p for p in projects if files[p.name].cursor.get(language)]
    rng.shuffle(holders)
    # A server per project costs its start, its model and its index: a short run takes fewer
    # projects (one per PER_PROJECT positions, at least MIN_PROJECTS), a full run all of them.
    holders = holders[: max(MIN_PROJECTS, math.ceil(n / PER_PROJECT))]
    queues: dict[str, list[Path]] = {}
    for p in holders:
        queue = list(files[p.name].cursor[language])
        rng.shuffle(queue)
        queues[p.name] = queue
    opened: dict[Path, _File] = {}
    turn = {p.name: 0 for p in holders}
    out: list[Position] = []
    # Turns: a project out of positions of a kind gives its turn to the next.
    for k in range(2 * n * max(1, len(holders))):
        if len(out) >= n or not holders:
            break
        kind = KIND_CYCLE[len(out) % len(KIND_CYCLE)]
        project = holders[k % len(holders)]
        queue = queues[project.name]
        for _ in range(len(queue)):
            path = queue[turn[project.name] % len(queue)]
            turn[project.name] += 1
            if path not in opened:
                opened[path] = _File(path, FAMILY[language])
            f = opened[path]
            if (got := f.take(kind, rng)) is not None:
                cut = cut_at(path, f.lines, *got)
                out.append(Position(language=language, project=project, kind=kind, cut=cut))
                break
    return out
