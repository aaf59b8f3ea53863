"""Reading an audit log's files: the rotated files in chain order, the last complete line, and
the unfinished tail a killed writer left."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from audit.record import record_problem

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
