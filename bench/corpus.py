"""The third-party corpus of the context benchmarks: real code that Debian packages ship.

`bench/setup-corpus.sh` unpacks the packages under `.cache/corpus/ROLE/` (or
`$AIRGAP_BENCH_CORPUS`); this module says which folders of them make each language's project,
which files of a project hold the cursor positions, and how a position is cut.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node

from context.languages import for_path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("AIRGAP_BENCH_CORPUS") or ROOT / ".cache" / "corpus")
SETUP = "bench/setup-corpus.sh"

# Where each role's sources lie inside its unpacked packages (a glob under the role folder).
SOURCE_ROOTS = {
    "ada-runtime": "usr/lib/gcc/*/*/adainclude",
    "gnatcoll": "usr/share/ada/adainclude",
    "xmlada": "usr/share/ada/adainclude",
    "aunit": "usr/share/ada/adainclude",
    "templates-parser": "usr/share/ada/adainclude",
    "ghdl": "usr/lib/ghdl/src",
    "jool": "usr/src/*/src",
    "python": "usr/lib/python3.*",
    "docutils": "usr/lib/python3/dist-packages/docutils",
    "jinja2": "usr/lib/python3/dist-packages/jinja2",
    "apfs": "usr/src/linux-apfs-rw-*",
    "ovpn-dco": "usr/src/ovpn-dco-*",
    "xtables-addons": "usr/src/xtables-addons-*",
}

# SPARK_Mode that is not switched Off: `with SPARK_Mode`, `pragma SPARK_Mode;`, `(On)`, `=> On`.
SPARK_ON = re.compile(r"SPARK_Mode(?!\s*(?:=>|\()\s*Off)", re.IGNORECASE)
ADA = (".ads", ".adb")


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """One language's workspace: a coherent tree copied from one role's sources."""

    language: str  # the row's label
    lsp_id: str  # the LSP language id sent in didOpen
    role: str
    folder: str  # under the role's source root (a glob, one match)
    keep: Callable[[str, str], bool]  # (relative path, text) -> copied into the workspace
    cursor: Callable[[str, str], bool]  # (path, text) -> positions are taken there


def _vhdl_keep(rel: str, _text: str) -> bool:
    # ghdl ships each IEEE package once per VHDL revision (v87, v93, 2008): near-copies that would
    # hand the model the answer from the "other" file. One revision only: VHDL-2008.
    if not rel.endswith(".vhdl"):
        return False
    top = rel.split("/")[0]
    return (
        top in ("ieee2008", "upf")
        or rel.startswith(("std/v08/", "std/env"))
        or (top == "synopsys" and rel.count("/") == 1)
    )


PROJECTS = (
    Project(
        language="Ada",
        lsp_id="ada",
        role="gnatcoll",
        folder="gnatcoll",
        keep=lambda rel, _t: rel.endswith(ADA),
        cursor=lambda _rel, text: not SPARK_ON.search(text),
    ),
    Project(
        language="SPARK",
        lsp_id="ada",
        role="ada-runtime",
        folder=".",
        keep=lambda rel, _t: rel.endswith(ADA),
        cursor=lambda _rel, text: bool(SPARK_ON.search(text)),
    ),
    Project(
        language="VHDL",
        lsp_id="vhdl",
        role="ghdl",
        folder=".",
        keep=_vhdl_keep,
        cursor=lambda _rel, _t: True,
    ),
    Project(
        language="Python",
        lsp_id="python",
        role="python",
        folder="asyncio",
        keep=lambda rel, _t: rel.endswith(".py"),
        cursor=lambda _rel, _t: True,
    ),
    Project(
        language="C",
        lsp_id="c",
        role="jool",
        folder=".",
        keep=lambda rel, _t: rel.endswith((".c", ".h")),
        cursor=lambda rel, _t: rel.endswith(".c"),
    ),
)


class MissingCorpus(RuntimeError):
    pass


def source_root(role: str) -> Path:
    found = sorted((CORPUS / role).glob(SOURCE_ROOTS[role])) if (CORPUS / role).is_dir() else []
    if not found:
        raise MissingCorpus(f"no {role} sources under {CORPUS / role}: run {SETUP} (as root)")
    return found[-1]


def packages(role: str) -> list[str]:
    """'name version' of the Debian packages a role was unpacked from."""
    path = CORPUS / role / "PACKAGES"
    return path.read_text(encoding="utf-8").split("\n")[:-1] if path.is_file() else []


def project_source(project: Project) -> Path:
    base = source_root(project.role)
    if project.folder == ".":
        return base
    found = sorted(base.glob(project.folder))
    if not found or not found[-1].is_dir():
        raise MissingCorpus(f"no folder {project.folder} under {base}: run {SETUP}")
    return found[-1]


def copy_project(project: Project, dest: Path) -> list[Path]:
    """Copy the project's kept files to `dest/<folder name>`; returns the copied files."""
    src = project_source(project)
    out = dest / (src.name if project.folder != "." else project.role)
    copied = []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(src).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        if project.keep(rel, text):
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(target)
    return copied


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    path: Path
    line: int
    character: int
    text: str  # the document as sent: the rest of the cursor's line removed
    target: str  # what was removed


COMMENT_STARTS = ("--", "#", "//", "/*", "*", '"""', "'''", '"', "'")


def cut(line: str) -> int | None:
    """Where the cursor goes on a line: after the first third of its text, moved to the end of
    the word it falls in (or back to the end of the word before blanks); None for a line too
    short, or with nothing left to complete."""
    body = line.strip()
    # ASCII only: LSP columns count UTF-16 units, Python's count code points.
    if len(body) < 10 or body.startswith(COMMENT_STARTS) or not line.isascii():
        return None
    indent = len(line) - len(line.lstrip())
    at = indent + max(1, len(body) // 3)
    while at < len(line) and _word(line[at - 1]) and _word(line[at]):
        at += 1
    while at > indent + 1 and line[at - 1] in " \t":  # typed up to a word, not into blanks
        at -= 1
    rest = line[at:].strip()
    if len(rest) < 3:
        return None
    return at


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def in_prose(root: Node, line: int, character: int) -> bool:
    """Whether the cursor is inside a comment or a string (a docstring line): not code."""
    node: Node | None = root.descendant_for_point_range((line, character - 1), (line, character))
    while node is not None:
        if "comment" in node.type or "string" in node.type:
            return True
        node = node.parent
    return False


def positions(project: Project, files: list[Path], n: int, seed: int) -> list[Position]:
    """`n` cursor positions drawn with a fixed seed from the project's cursor files."""
    candidates: list[tuple[Path, int, int]] = []
    texts: dict[Path, list[str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if not project.cursor(path.as_posix(), text):
            continue
        lines = text.split("\n")
        texts[path] = lines
        language = for_path(path)
        tree = language.parser().parse(text.encode("utf-8")) if language else None
        for i, line in enumerate(lines):
            at = cut(line)
            # Code at the cursor, and no comment at the end: the target is code to the end.
            if at is not None and (
                tree is None
                or not (
                    in_prose(tree.root_node, i, at)
                    or in_prose(tree.root_node, i, len(line.rstrip()))
                )
            ):
                candidates.append((path, i, at))
    picked = random.Random(seed).sample(candidates, min(n, len(candidates)))
    out = []
    for path, i, at in picked:
        lines = texts[path]
        doc = "\n".join([*lines[:i], lines[i][:at], *lines[i + 1 :]])
        out.append(
            Position(path=path, line=i, character=at, text=doc, target=lines[i][at:].rstrip("\r"))
        )
    return out
