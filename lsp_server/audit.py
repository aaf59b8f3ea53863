"""The audit log: one JSONL line per suggestion, written and flushed before the reply is sent.

Each line carries the sha256 of the line before it, so an edited, removed or reordered line
breaks the chain. Appends happen under an exclusive file lock: several editors can share a log.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inference.errors import AirgapError

GENESIS = "0" * 64


class AuditError(AirgapError):
    """The audit line could not be written, so the suggestion must not be shown."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    id: str
    time: str
    kind: str  # inline_completion (hover and code actions later)
    user: dict[str, Any]  # the OS account: name, uid
    host: str
    client: dict[str, Any]  # what the editor says it is: name, version
    file: str
    position: dict[str, int]
    language: str
    model: dict[str, str]  # name, version, manifest_sha256, family, prompt_format
    device: str
    dtype: str
    decoding: dict[str, Any]
    prompt: str
    text: str
    context_sources: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def os_identity() -> tuple[dict[str, Any], str]:
    """The OS user (never the editor's claim) and the host name, read locally."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return {"name": name, "uid": os.getuid()}, socket.gethostname()


class AuditSink(Protocol):
    path: Path

    def write(self, record: AuditRecord) -> None: ...


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


class JsonlAudit:
    """An append-only, hash-chained JSONL file, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: AuditRecord) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(
                f"Cannot open the audit log {self.path} ({exc.strerror}); no suggestion is shown "
                "without its audit line. Fix the path or its permissions (setting auditPath)."
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = last_line(fd)
            prev = hashlib.sha256(last).hexdigest() if last else GENESIS
            doc = asdict(record) | {"prev_sha256": prev}
            line = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(28, f"short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(
                f"Cannot write the audit log {self.path} ({exc.strerror or exc}); the suggestion "
                "was withheld. Free disk space or fix permissions, then try again."
            ) from exc
        finally:
            os.close(fd)
