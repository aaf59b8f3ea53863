"""`airgap-lsp provenance`: which lines of a change came from the assistant, and were they accepted.

Input: a unified diff (`git diff` output, or `diff -u`) and the audit log. Output: every added line
that matches a logged suggestion, with who was shown it, when, by which model (name, version,
manifest hash) and from which context; and the lines whose suggestion has no accept on record.

Matching rule
-------------
An added line in file P (P is the diff's repo-relative path, prefix `b/` removed) is marked by a
suggestion (an audit record of a kind in `SUGGESTION_KINDS`) when

1. the suggestion's file (a `file://` URI, or a plain path) ends with P, compared by path
   component: `src/a.adb` matches `/home/u/ws/src/a.adb` but not `/home/u/ws/xsrc/a.adb`; and
2. the added line's text stripped of surrounding whitespace is at least `min_chars` (3)
   characters long, and
   - equals a stripped line of the suggestion's text, or
   - ends with the suggestion's stripped FIRST line (an inline completion usually completes a line
     the user started: `Target := ` typed, `Clamp_Altitude (Requested);` suggested). That first
     line must itself be at least `min_chars` long, or any line would end with it.

When several suggestions match one added line, an accepted one wins over one not accepted, and
among equals the latest (by its logged time, then by its place in the log) wins. A suggestion is
accepted when the log holds an `accept` event with its id (an accept is final: a `not_accepted`
logged after it does not undo it).

`Provenance.unaccounted` holds the marks whose suggestion was shown but never accepted (only a
`not_accepted` event, or none at all): lines that look written by the assistant with no accept
on record. The rule is textual, so it can also mark a line a person typed that happens to equal a
line of a suggestion they were shown (`end if;`): a mark says "this text was suggested", not
"this text was inserted by the assistant".

Policy flag for CI: `airgap-lsp provenance DIFF --require-accepted` exits with status 3 when
`unaccounted` is not empty, so a pipeline can refuse a change that carries assistant-looking
lines the audit log does not show as accepted (0 otherwise; 1 when the diff or the log cannot be
read).

Limits: a diff written with custom prefixes (`--src-prefix`, `diff -u old/ new/`) keeps them in
P, and then P matches no suggestion; `git diff` with default or mnemonic prefixes, and
`--no-prefix`, are understood. Combined diffs of a merge (`diff --cc`, `@@@` hunks) are skipped.
Paths compare case-sensitively.

This module is pure: no pygls, no LSP; the CLI reads the files and prints what it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

SUGGESTION_KINDS = frozenset({"inline_completion"})  # records whose text is inserted into code
MIN_CHARS = 3

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# git's prefixes: a/ b/ by default; with diff.mnemonicPrefix (i)ndex, (w)ork tree, (c)ommit,
# (o)bject; `git diff --no-index` with mnemonic prefixes: 1/ 2/.
_OLD_PREFIXES = frozenset({"a", "i", "c", "o", "1"})
_NEW_PREFIXES = frozenset({"b", "w", "i", "2"})
_DEV_NULL = "/dev/null"
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass(frozen=True, slots=True, kw_only=True)
class AddedLine:
    path: str  # repo-relative, as the diff names the new file
    line: int  # 1-based, in the new file
    text: str  # without the leading '+'


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    line: AddedLine
    suggestion_id: str
    accepted: bool
    time: str  # when the suggestion was logged
    user: dict[str, Any]
    host: str
    model: dict[str, Any]
    context_sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    marks: list[Mark]  # one per marked added line, in diff order
    added: int  # added lines in the diff
    unaccounted: list[Mark]  # marks whose suggestion has no accept event


# --- the diff ----------------------------------------------------------------------------------


def _unquote_git(raw: str) -> tuple[str, str]:
    """A C-quoted name as git writes it (`"b/caf\\303\\251.adb"`), and what follows it."""
    out = bytearray()
    i = 1
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            return out.decode("utf-8", "replace"), raw[i + 1 :]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in "01234567" and i + 3 < len(raw):
                out.append(int(raw[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt) if nxt.isascii() else 63))
            i += 2
            continue
        out.extend(ch.encode("utf-8"))
        i += 1
    return out.decode("utf-8", "replace"), ""  # no closing quote: take what there is


def _header_path(raw: str) -> str:
    """The name in a `--- NAME` / `+++ NAME` line: quoted (git), or up to a tab (a timestamp
    from `diff -u`, or the tab git adds after a name with a space)."""
    raw = raw.rstrip("\r")
    if raw.startswith('"'):
        return _unquote_git(raw)[0]
    return raw.split("\t", 1)[0]


def _new_path(old: str, new: str) -> str | None:
    """The repo-relative path of the new file, or None when the file was deleted."""
    if new == _DEV_NULL:
        return None
    head, sep, rest = new.partition("/")
    old_head = old.partition("/")[0]
    if sep and rest and head in _NEW_PREFIXES and (old == _DEV_NULL or old_head in _OLD_PREFIXES):
        new = rest
    parts = [p for p in new.split("/") if p not in ("", ".")]
    return "/".join(parts)


def added_lines(diff: str) -> list[AddedLine]:
    """Every added line of a unified diff, with its repo-relative path and new-file line number.

    Understands `git diff` (including new files from `/dev/null`, deletions, renames and copies,
    mode changes, binary-file notices, quoted names) and `diff -u` / `diff -ru`. Hunk bodies are
    read by their line counts, so a removed Ada comment (`--- text`) or an added `++i;`
    (`+++i;`) is content, not a file header. `\\ No newline at end of file` is skipped.
    """
    lines = diff.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[AddedLine] = []
    path: str | None = None
    i, n = 0, len(lines)
    while i < n:
        line = lines[i].rstrip("\r")
        if line.startswith("diff "):
            path = None  # a new file section; its ---/+++ lines (if any) name it
        elif line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            path = _new_path(_header_path(line[4:]), _header_path(lines[i + 1][4:]))
            i += 2
            continue
        elif line.startswith("@@ ") and (m := _HUNK.match(line)):
            old_left = 1 if m[2] is None else int(m[2])
            new_left = 1 if m[4] is None else int(m[4])
            number = int(m[3])
            i += 1
            while i < n and (old_left > 0 or new_left > 0):
                body = lines[i].removesuffix("\r")
                tag = body[:1]
                if tag == "+":
                    if path:
                        out.append(AddedLine(path=path, line=number, text=body[1:]))
                    number += 1
                    new_left -= 1
                elif tag == "-":
                    old_left -= 1
                elif tag in (" ", ""):  # "": a blank context line whose space was trimmed
                    number += 1
                    old_left -= 1
                    new_left -= 1
                elif tag != "\\":
                    break  # a cut-off hunk: read the next header from here
                i += 1
            continue
        i += 1
    return out


# --- the log -----------------------------------------------------------------------------------


def _uri_parts(uri: str) -> tuple[str, ...]:
    parsed = urlparse(uri)
    raw = unquote(parsed.path) if parsed.scheme == "file" else uri
    return tuple(p for p in raw.replace("\\", "/").split("/") if p not in ("", "."))


def _moment(text: Any) -> float:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return float("-inf")
    return when.timestamp()  # a naive time is taken as local, as the writer's clock was


@dataclass(frozen=True, slots=True)
class _Suggestion:
    record: dict[str, Any]
    parts: tuple[str, ...]
    lines: frozenset[str]  # stripped lines of its text long enough to count
    first: str | None  # its stripped first line, when long enough
    rank: tuple[bool, float, int]  # accepted, time, place in the log: larger wins

    @property
    def accepted(self) -> bool:
        return self.rank[0]

    def matches(self, text: str) -> bool:
        return text in self.lines or (self.first is not None and text.endswith(self.first))


def _suggestions(audit_lines: Iterable[dict[str, Any]], min_chars: int) -> list[_Suggestion]:
    records: dict[str, tuple[int, dict[str, Any]]] = {}
    accepted: set[str] = set()
    for order, rec in enumerate(audit_lines):
        kind = rec.get("kind")
        sid = rec.get("id")
        if not isinstance(sid, str):
            continue
        if kind == "accept":
            accepted.add(sid)
        elif kind in SUGGESTION_KINDS:
            records[sid] = (order, rec)
    out = []
    for sid, (order, rec) in records.items():
        text = rec.get("text")
        if not isinstance(text, str) or not isinstance(rec.get("file"), str):
            continue
        stripped = [s.strip() for s in text.split("\n")]
        out.append(
            _Suggestion(
                record=rec,
                parts=_uri_parts(rec["file"]),
                lines=frozenset(s for s in stripped if len(s) >= min_chars),
                first=stripped[0] if len(stripped[0]) >= min_chars else None,
                rank=(sid in accepted, _moment(rec.get("time")), order),
            )
        )
    out.sort(key=lambda s: s.rank, reverse=True)  # the preferred first
    return out


def _ends_with(parts: tuple[str, ...], tail: tuple[str, ...]) -> bool:
    return bool(tail) and len(parts) >= len(tail) and parts[len(parts) - len(tail) :] == tail


def provenance(
    diff: str, audit_lines: Iterable[dict[str, Any]], *, min_chars: int = MIN_CHARS
) -> Provenance:
    """Mark the diff's added lines with the suggestions they came from (see the module's rule)."""
    added = added_lines(diff)
    suggestions = _suggestions(audit_lines, min_chars)
    by_path: dict[str, list[_Suggestion]] = {}
    marks: list[Mark] = []
    for line in added:
        text = line.text.strip()
        if len(text) < min_chars:
            continue
        if line.path not in by_path:
            tail = tuple(PurePosixPath(line.path).parts)
            by_path[line.path] = [s for s in suggestions if _ends_with(s.parts, tail)]
        best = next((s for s in by_path[line.path] if s.matches(text)), None)
        if best is None:
            continue
        rec = best.record
        marks.append(
            Mark(
                line=line,
                suggestion_id=rec["id"],
                accepted=best.accepted,
                time=str(rec.get("time", "")),
                user=dict(rec.get("user") or {}),
                host=str(rec.get("host", "")),
                model=dict(rec.get("model") or {}),
                context_sources=list(rec.get("context_sources") or []),
            )
        )
    return Provenance(
        marks=marks, added=len(added), unaccounted=[m for m in marks if not m.accepted]
    )


# --- output ------------------------------------------------------------------------------------


def _context_paths(sources: list[dict[str, Any]]) -> str:
    paths = dict.fromkeys(str(s.get("path", "?")) for s in sources)
    return ", ".join(paths) or "none"


def format_text(p: Provenance) -> str:
    out = []
    for m in p.marks:
        user = m.user.get("name") or f"uid {m.user.get('uid', '?')}"
        model = m.model
        sha = str(model.get("manifest_sha256", ""))[:12] or "no hash"
        out.append(
            f"{m.line.path}:{m.line.line}  <- suggestion {m.suggestion_id} "
            f"({'accepted' if m.accepted else 'NOT accepted'}) at {m.time} by {user}@{m.host}, "
            f"model {model.get('name', '?')}@{model.get('version', '?')} ({sha}), "
            f"context: {_context_paths(m.context_sources)}"
        )
    out.append(
        f"{len(p.marks)} of {p.added} added lines come from suggestions; "
        f"{len(p.unaccounted)} without an accept on record"
    )
    return "\n".join(out)


def _mark_doc(m: Mark) -> dict[str, Any]:
    doc = asdict(m)
    line = doc.pop("line")
    return {"path": line["path"], "line": line["line"], "text": line["text"], **doc}


def format_json(p: Provenance) -> str:
    """{"added", "marked", "unaccounted", "marks": [...], "unaccounted_lines": [...]}.

    Each mark is flat: path, line, text, suggestion_id, accepted, time, user, host, model,
    context_sources. `unaccounted_lines` names the not-accepted marks by path, line and id.
    """
    return json.dumps(
        {
            "added": p.added,
            "marked": len(p.marks),
            "unaccounted": len(p.unaccounted),
            "marks": [_mark_doc(m) for m in p.marks],
            "unaccounted_lines": [
                {"path": m.line.path, "line": m.line.line, "suggestion_id": m.suggestion_id}
                for m in p.unaccounted
            ],
        },
        indent=2,
        ensure_ascii=False,
    )
