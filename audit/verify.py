"""`audit verify`: the hash chain checked line by line, across rotated files."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from audit.files import line_sha256, parse_line, rotated_files
from audit.record import GENESIS


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """What `verify` or `verify_chain` found.

    `lines` counts the complete lines that verified (all of them when `ok`; those before
    `first_broken` otherwise, across all files for `verify_chain`). `first_broken` is a 1-based
    line number inside `file`. `last_sha256` is the hash of the last line that verified: record
    it somewhere else to detect, later, what the chain alone cannot (see `verify`).
    """

    ok: bool
    lines: int
    first_broken: int | None
    reason: str
    partial_tail: bool
    file: Path | None = None
    last_sha256: str = GENESIS


@dataclass(frozen=True, slots=True, kw_only=True)
class _FileCheck:
    lines: int
    last_sha256: str
    partial: int = 0  # bytes of an unfinished last line
    broken: int | None = None
    reason: str = ""


def _whole_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, sha256) of every complete line: the second pass that explains a break."""
    out = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if raw.endswith(b"\n"):
                out.append((n, line_sha256(raw[:-1])))
    return out


def _why_unlinked(path: Path, n: int, recorded: str, own: str, before: str, start: str) -> str:
    """Tell a person what kind of change explains line n not chaining from the line before it.

    `before` names what line n should chain from; `start` is the explanation for line 1 when
    nothing in the file explains it.
    """
    hashes = _whole_lines(path)
    copy_of = next((m for m, h in hashes if h == own and m != n), None)
    follows = next((m for m, h in hashes if h == recorded), None)
    if copy_of is not None:
        why = f"it is a copy of line {copy_of}: a line was duplicated or inserted"
    elif follows is not None and follows < n:
        why = f"it chains from line {follows}: lines were inserted before it, or it was moved"
    elif follows is not None:
        why = f"it chains from line {follows}, which comes after it: lines were swapped or moved"
    elif n == 1:
        why = start
    else:
        why = (
            f"line {n - 1} was edited, lines between line {n - 1} and line {n} were removed, or "
            f"line {n}'s prev_sha256 was changed"
        )
    return f"line {n}: prev_sha256 does not match {before} ({why})"


def _check_file(path: Path, prev: str, *, first_before: str, first_start: str) -> _FileCheck:
    n = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return _FileCheck(lines=n, last_sha256=prev, partial=len(raw))
            n += 1
            line = raw[:-1]
            doc, problem = parse_line(line)
            if doc is None:
                why = f"line {n}: {problem.removeprefix('is ')}: the line was altered"
                return _FileCheck(lines=n - 1, last_sha256=prev, broken=n, reason=why)
            if line.endswith(b"\r"):  # never written: JSON escapes it
                why = (
                    f"line {n}: it ends in a carriage return: the file's line ends were converted "
                    "to CRLF (a copy through another system?), which changes every line's hash. "
                    "Verify the original file, or convert the copy back to LF line ends"
                )
                return _FileCheck(lines=n - 1, last_sha256=prev, broken=n, reason=why)
            if doc["prev_sha256"] != prev:
                before = first_before if n == 1 else f"line {n - 1}"
                why = _why_unlinked(
                    path, n, doc["prev_sha256"], line_sha256(line), before, first_start
                )
                return _FileCheck(lines=n - 1, last_sha256=prev, broken=n, reason=why)
            prev = line_sha256(line)
    return _FileCheck(lines=n, last_sha256=prev)


def verify(path: Path, *, prev_sha256: str = GENESIS) -> VerifyResult:
    """Check that every complete line of one audit file is a record and that the chain holds.

    A record is a JSON object with every `AuditRecord` field (every `AuditEvent` field when its
    kind is in `EVENT_KINDS`) and `prev_sha256`, each of its type (`record_problem`); other keys
    are allowed. A line that cannot be read (not UTF-8, not JSON, nested too deeply) is broken.

    The line named is the FIRST line at which the file stops being consistent: a line that is
    not a JSON audit record names itself; otherwise the first line whose `prev_sha256` is not the
    hash of the line before it. So a line edited into something that still parses is named by
    the line AFTER it (an edit of line 3 names line 4), because the chain cannot tell "line 3 was
    edited" from "line 4's prev_sha256 was forged" or "lines between were removed"; the reason
    says which changes fit, and rules some out by finding where the line really chains from. A
    deleted line names the line now in its place; an inserted or copied line names itself; two
    swapped lines name the first of them.

    Limits of a chain alone: an edit of the LAST line, and lines removed from the END (or the
    whole file replaced by a shorter valid log), leave a valid chain. Keep `last_sha256` from a
    result somewhere the log's writers cannot reach, and compare it later. A last line with no
    newline (a writer killed mid-write) is not an error: the file verifies up to the last
    complete line, with `partial_tail=True`; the next write removes it.

    `prev_sha256` is what line 1 chains from: the genesis for a log, or the last line's hash of
    the rotated file before it (`verify_chain` checks a rotated log whole).
    """
    return _verify_files(
        [path], path, prev_sha256, first_start=_start_reason(prev_sha256), chain=False
    )


def _start_reason(prev: str) -> str:
    if prev == GENESIS:
        return (
            "the lines before it were removed, or the log's older files were moved away: if "
            "they were archived, verify from the last line of the newest of them with "
            "`airgap-lsp audit verify --from-sha256 HASH`, HASH being the sha256 its own "
            "verification printed"
        )
    return "the log does not continue from the line of the given sha256"


def verify_chain(folder_or_path: Path, prev_sha256: str = GENESIS) -> VerifyResult:
    """Verify a rotated log as one chain: its rotated files oldest first, then the current file.

    Pass the current file, or the folder that holds one log. A rotated file that was removed
    breaks the chain at line 1 of the file after it. `prev_sha256`: what the oldest file left
    chains from, when older ones were archived (the last line's hash of the newest of them).
    """
    target = Path(os.path.realpath(folder_or_path))
    if target.is_dir():
        stems = _log_stems(target)
        if not stems:
            return _missing(folder_or_path, f"{folder_or_path} holds no audit log (*.jsonl)")
        if len(stems) > 1:
            return VerifyResult(
                ok=False,
                lines=0,
                first_broken=None,
                reason=(
                    f"{folder_or_path} holds several logs ({', '.join(sorted(stems))}): "
                    "pass the current file of the one to verify"
                ),
                partial_tail=False,
            )
        current = target / f"{stems.pop()}.jsonl"
    else:
        current = target
    files = rotated_files(current.parent, current.stem)
    if current.exists() or not files:
        files.append(current)
    return _verify_files(
        files, folder_or_path, prev_sha256, first_start=_start_reason(prev_sha256), chain=True
    )


def _log_stems(folder: Path) -> set[str]:
    stems = set()
    rotated = re.compile(r"(.+)-\d{8}T\d{12}\.jsonl")
    for name in os.listdir(folder):
        if not name.endswith(".jsonl") or not (folder / name).is_file():
            continue
        m = rotated.fullmatch(name)
        stems.add(m[1] if m else name[: -len(".jsonl")])
    return stems


def _missing(path: Path, reason: str) -> VerifyResult:
    return VerifyResult(ok=False, lines=0, first_broken=None, reason=reason, partial_tail=False)


def _verify_files(
    files: list[Path], shown: Path, prev: str, *, first_start: str, chain: bool
) -> VerifyResult:
    total = 0
    before_file: Path | None = None
    for i, path in enumerate(files):
        try:
            if before_file is None:
                first_before = (
                    "the start of a log (64 zeros)" if prev == GENESIS else f"the given {prev}"
                )
                start = first_start
            else:
                first_before = f"the last line of {before_file.name}"
                start = f"{before_file.name} lost lines at its end, or a rotated file was removed"
            check = _check_file(path, prev, first_before=first_before, first_start=start)
        except FileNotFoundError:
            return _missing(
                path,
                f"{path} does not exist: there is no audit log to verify (check the path; a "
                "removed log cannot be told from one never written)",
            )
        except OSError as exc:
            return _missing(path, f"cannot read {path} ({exc.strerror or exc})")
        label = f"{path.name} " if chain else ""
        total += check.lines
        if check.broken is not None:
            return VerifyResult(
                ok=False,
                lines=total,
                first_broken=check.broken,
                reason=label + check.reason,
                partial_tail=False,
                file=path,
                last_sha256=check.last_sha256,
            )
        last_file = i == len(files) - 1
        if check.partial and not last_file:
            return VerifyResult(
                ok=False,
                lines=total,
                first_broken=check.lines + 1,
                reason=(
                    f"{label}line {check.lines + 1}: unfinished ({check.partial} bytes, no "
                    "newline), but newer files follow: the rotated file was cut after rotation"
                ),
                partial_tail=False,
                file=path,
                last_sha256=check.last_sha256,
            )
        prev = check.last_sha256
        if check.lines:
            before_file = path
        if last_file:
            where = f"{shown} ({len(files)} files)" if chain else f"{shown}"
            if check.partial:
                reason = (
                    f"{where}: {total} lines verified; after them, an unfinished line of "
                    f"{check.partial} bytes (a writer was stopped mid-write, so that suggestion "
                    "was never shown); the next write removes it"
                )
            elif total == 0:
                reason = f"{where} is empty: no lines to verify"
            else:
                reason = (
                    f"{where}: {total} lines verified, the chain is whole; last line sha256 "
                    f"{prev} (keep it elsewhere: an edit of the last line or lines removed from "
                    "the end only show against it)"
                )
            return VerifyResult(
                ok=True,
                lines=total,
                first_broken=None,
                reason=reason,
                partial_tail=bool(check.partial),
                file=path,
                last_sha256=prev,
            )
    raise AssertionError("unreachable: files is never empty")
