"""Reading an audit log's files: the rotated files in chain order, the last complete line, and
the unfinished tail a killed writer left."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.record import AuditReadError, record_problem

READ_STEP = 1 << 16


def last_line(fd: int) -> bytes:
    """The last line of an open file, read backwards from its end: the log can grow large."""
    size = os.lseek(fd, 0, os.SEEK_END)
    pos, tail = size, b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        body = tail.rstrip(b"\n")
        nl = body.rfind(b"\n")
        if nl >= 0:
            return body[nl + 1 :]
    return tail.rstrip(b"\n")


def tail(fd: int) -> tuple[bytes, int]:
    """The last complete line (without its newline) and the offset just past that newline.

    Bytes after the offset are an unfinished line a killed writer left. Read backwards in
    steps and joined once, so a line of many megabytes costs one pass, not one per step.
    """
    pos = os.lseek(fd, 0, os.SEEK_END)
    end: int | None = None
    parts: list[bytes] = []
    while pos > 0:
        step = min(READ_STEP, pos)
        pos -= step
        chunk = os.pread(fd, step, pos)
        if end is None:
            nl = chunk.rfind(b"\n")
            if nl < 0:
                continue  # still inside the unfinished tail
            end = pos + nl + 1
            chunk = chunk[:nl]
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            parts.append(chunk[nl + 1 :])
            return b"".join(reversed(parts)), end
        parts.append(chunk)
    if end is None:
        return b"", 0
    return b"".join(reversed(parts)), end


def line_sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def rotated_pattern(stem: str) -> re.Pattern[str]:
    return re.compile(re.escape(stem) + r"-(\d{8}T\d{12})\.jsonl")


def rotated_files(folder: Path, stem: str) -> list[Path]:
    """The rotated files of the log `stem` in `folder`, oldest first."""
    pattern = rotated_pattern(stem)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / name for name in sorted(names) if pattern.fullmatch(name)]


def log_files(path: Path) -> list[Path]:
    """An audit log's files in chain order: its rotated files, oldest first, then the current
    one. For a log named through a symbolic link, those beside the file it points to, where
    rotation puts them."""
    real = Path(os.path.realpath(Path(path).expanduser()))
    return [*rotated_files(real.parent, real.stem), real]


def first_line(fd: int) -> bytes | None:
    """The first line of an open file, without its newline; None when there is no newline."""
    parts: list[bytes] = []
    pos = 0
    while chunk := os.pread(fd, READ_STEP, pos):
        nl = chunk.find(b"\n")
        if nl >= 0:
            parts.append(chunk[:nl])
            return b"".join(parts)
        parts.append(chunk)
        pos += len(chunk)
    return None


def parse_line(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The line's record, or what it is instead ("is not ...")."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte {exc.start + 1})"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg}, column {exc.colno})"
    except RecursionError:  # `[[[[...` 200,000 deep: no record of ours nests past a few levels
        return None, "is not an audit record (JSON nested too deeply to read)"
    except ValueError:  # a number of more than 4,300 digits
        return None, "is not an audit record (a number too long to read)"
    problem = record_problem(doc)
    if problem:
        return None, f"is not an audit record ({problem})"
    return doc, ""


def log_lines(path: Path, *, newest_first: bool = False) -> Iterator[tuple[Path, int, bytes]]:
    """Each complete line of an audit log (without its newline), with its file and 1-based line
    number: the rotated files oldest first, then the current one; with `newest_first`, the files
    the other way round (a file's lines stay in order). An unfinished last line (a writer
    stopped mid-write; it was never shown) is not a line. No log at `path`, or a file that cannot
    be read, raises AuditReadError saying so."""
    files = log_files(path)
    if newest_first:
        files.reverse()
    if not any(f.exists() for f in files):
        raise AuditReadError(
            f"There is no audit log at {path}: pass the log the suggestions were written to "
            "(--log, or the auditPath setting)."
        )
    for file in files:
        try:
            with file.open("rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        break
                    yield file, number, raw[:-1]
        except FileNotFoundError:
            continue  # only rotated files so far, or rotated away meanwhile
        except OSError as exc:
            raise AuditReadError(f"Cannot read the audit log {file} ({exc.strerror}).") from exc


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an audit log, in chain order (`log_lines`). A line that is not an audit
    record (`record_problem`) raises AuditReadError, naming its file and line. This only reads:
    `airgap-lsp audit verify` checks the chain."""
    for file, number, raw in log_lines(path):
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise AuditReadError(
                f"{file} line {number} is not a JSON audit record ({exc}); run "
                "`airgap-lsp audit verify` on it."
            ) from exc
        except RecursionError:
            raise _not_a_record(file, number, "JSON nested too deeply to read") from None
        if problem := record_problem(doc):
            raise _not_a_record(file, number, problem)
        yield doc


def _not_a_record(file: Path, number: int, problem: str) -> AuditReadError:
    return AuditReadError(
        f"{file} line {number} is not an audit record ({problem}); run `airgap-lsp audit "
        "verify` on it."
    )
