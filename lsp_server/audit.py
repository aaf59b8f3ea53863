"""The audit log: one JSONL line per suggestion, written and flushed before the reply is sent.

Each line carries the sha256 of the line before it, so an edited, removed or reordered line
breaks the chain. Appends happen under an exclusive file lock: several editors can share a log.
A line a killed writer left unfinished is dropped by the next writer (it was never acknowledged).
A log can be rotated by size; the first line of the new file chains from the last of the old one.
The writer only cuts, rotates or appends to a file that is its log: a regular file of this user,
named by its own path (not a link), whose first line is an audit record.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import socket
import stat
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from inference.errors import AirgapError

GENESIS = "0" * 64
_STAMP = "%Y%m%dT%H%M%S%f"  # UTC, fixed width: rotated names sort by time
_READ_STEP = 1 << 16
_MAX_REOPEN = 100  # a writer that keeps finding its file rotated away gives up, loudly
_LINE_START = b'{"id"'  # how every line of ours starts: `id` is the first field of both kinds
# O_NOFOLLOW: a link at the path fails the open instead of leading to another file. O_NONBLOCK:
# a FIFO or a device there must not hang the open before it is refused (cleared after the check).
_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}

log = logging.getLogger("airgap_lsp.audit")


class AuditError(AirgapError):
    """The audit line could not be written, so the suggestion must not be shown."""


class AuditRefused(AuditError):
    """The audit path holds something that is not this user's audit log; it was left as it was."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    id: str
    time: str
    kind: str  # inline_completion, hover, code_action.refactor / .spark_contracts / .explain
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
    # What was made of the model's text (hover and code actions): the edit offered, or why none
    # was (the proposal did not parse), and what the explanation was about.
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What became of a shown suggestion, logged under the suggestion's id."""

    id: str
    time: str
    kind: str  # one of EVENT_KINDS
    user: dict[str, Any]
    host: str
    client: dict[str, Any]
    file: str
    reason: str = ""


EVENT_KINDS = frozenset({"accept", "not_accepted"})


def login_name() -> str:
    """The name of the user this process runs as, from the user database: never from $USER or
    $LOGNAME, which any user can set to another's name."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no entry: the audit line still has the uid
        return ""


def os_identity() -> tuple[dict[str, Any], str]:
    """The OS user (never the editor's claim) and the host name, read locally."""
    return {"name": login_name(), "uid": os.getuid()}, socket.gethostname()


class AuditSink(Protocol):
    path: Path

    def write(self, record: AuditRecord | AuditEvent) -> None: ...


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


def _tail(fd: int) -> tuple[bytes, int]:
    """The last complete line (without its newline) and the offset just past that newline.

    Bytes after the offset are an unfinished line a killed writer left. Read backwards in
    steps and joined once, so a line of many megabytes costs one pass, not one per step.
    """
    pos = os.lseek(fd, 0, os.SEEK_END)
    end: int | None = None
    parts: list[bytes] = []
    while pos > 0:
        step = min(_READ_STEP, pos)
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


def _sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _month(line: bytes | None) -> str:
    """`YYYY-MM` of a line's time (UTC), or of now for None; "" when the line has no time."""
    if line is None:
        return datetime.now(UTC).strftime("%Y-%m")
    try:
        moment = datetime.fromisoformat(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m")


def _rotated_pattern(stem: str) -> re.Pattern[str]:
    return re.compile(re.escape(stem) + r"-(\d{8}T\d{12})\.jsonl")


def _rotated(folder: Path, stem: str) -> list[Path]:
    """The rotated files of the log `stem` in `folder`, oldest first."""
    pattern = _rotated_pattern(stem)
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
    return [*_rotated(real.parent, real.stem), real]


def _account(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _could_start_a_line(head: bytes) -> bool:
    """Whether bytes read where a line starts could be the start of one of ours (a stopped
    writer may have written only a few of its bytes)."""
    return _LINE_START.startswith(head[: len(_LINE_START)])


def _first_line(fd: int) -> bytes | None:
    """The first line of an open file, without its newline; None when there is no newline."""
    parts: list[bytes] = []
    pos = 0
    while chunk := os.pread(fd, _READ_STEP, pos):
        nl = chunk.find(b"\n")
        if nl >= 0:
            parts.append(chunk[:nl])
            return b"".join(parts)
        parts.append(chunk)
        pos += len(chunk)
    return None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data`. A short write is followed by one that raises the reason, so a full
    disk reads "No space left on device", not a byte count."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    """Make a created or renamed entry survive a power cut, not only its contents."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class JsonlAudit:
    """An append-only, hash-chained JSONL file, readable by its owner only.

    With `max_bytes`, a file that has grown past it is renamed to
    `<stem>-<UTC yyyymmddTHHMMSSffffff>.jsonl` beside it before the next append, and the new file
    chains from the last line of the renamed one: `verify_chain` checks them as one log. With
    `monthly`, the same happens when the month of the last line is over.
    With `group`, the file belongs to that group and is readable by it (mode 0640); without,
    it is 0600. An existing log of ours is given that mode too.

    The path must name a regular file of this user, not a symbolic link, and a file that is not
    empty must start with an audit record: anything else is refused (`AuditRefused`) and left
    as it was, so that a wrong path cannot make the writer cut, rename or append to it.
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int | None = None,
        *,
        monthly: bool = False,
        group: str | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.monthly = monthly
        self.group = group

    def write(self, record: AuditRecord | AuditEvent) -> None:
        for _ in range(_MAX_REOPEN):
            fd = self._open()
            try:
                self._refuse_unless_mine(os.fstat(fd))
                os.set_blocking(fd, True)
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self._append_locked(fd, record):
                    return
            except OSError as exc:
                raise AuditError(
                    f"Cannot write the audit log {self.path} ({exc.strerror or exc}); the "
                    "suggestion was withheld. Free disk space or fix permissions, then try again."
                ) from exc
            finally:
                os.close(fd)
        raise AuditError(
            f"The audit log {self.path} was renamed or removed {_MAX_REOPEN} times while this "
            "writer waited for it; the suggestion was withheld. Check what else moves that file."
        )

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP and os.path.islink(self.path):
                try:
                    to = f" (to {os.readlink(self.path)})"
                except OSError:  # removed since
                    to = ""
                raise AuditRefused(
                    f"The audit log {self.path} is a symbolic link{to}: the log is written only "
                    "to a file named by its own path, so that no link can make it append to, "
                    "cut or rename another file. The suggestion was withheld and nothing was "
                    "changed. Name the log file itself (setting auditPath, or the policy's "
                    "[audit] path)."
                ) from exc
            raise AuditError(
                f"Cannot open the audit log {self.path} ({exc.strerror}); no suggestion is "
                "shown without its audit line. Fix the path or its permissions "
                "(setting auditPath)."
            ) from exc

    def _refuse_unless_mine(self, held: os.stat_result) -> None:
        """A device, a pipe or another user's file is no log of this user's to write."""
        if not stat.S_ISREG(held.st_mode):
            kind = _KINDS.get(stat.S_IFMT(held.st_mode), "not a regular file")
            raise AuditRefused(
                f"The audit log {self.path} is {kind}, not a regular file: what is written there "
                "is not kept as a log. The suggestion was withheld and nothing was written. Name "
                "a file for the log (setting auditPath, or the policy's [audit] path)."
            )
        if held.st_uid != os.geteuid():
            raise AuditRefused(
                f"The audit log {self.path} belongs to {_account(held.st_uid)}, not to "
                f"{_account(os.geteuid())}, who runs this server: a log is written by its owner "
                "only (another user's file may be anything, and its owner can rewrite it). The "
                "suggestion was withheld and the file left as it was. Name a log of your own "
                "(setting auditPath, or the policy's [audit] path)."
            )

    def _refuse_unless_a_log(self, fd: int) -> None:
        """A file whose first line is not a record of ours is not ours to cut or rotate."""
        if not _could_start_a_line(os.pread(fd, len(_LINE_START), 0)):
            problem = "does not start like an audit record"
        elif (first := _first_line(fd)) is None:
            return  # one unfinished line, as a writer stopped in the first one leaves it
        else:
            problem = _parse(first)[1]
            if not problem:
                return
        raise AuditRefused(
            f"{self.path} is not an audit log: its first line {problem}. The suggestion was "
            "withheld and the file left as it was. Name another file for the log (setting "
            "auditPath, or the policy's [audit] path), or check this one with "
            f"`airgap-lsp audit verify --log {self.path}`."
        )

    def _append_locked(self, fd: int, record: AuditRecord | AuditEvent) -> bool:
        """Append under the lock; False when the file is no longer the log and must be reopened."""
        if not self._still_the_log(fd):
            return False  # another writer rotated it (or someone moved it) while we waited
        size = os.lseek(fd, 0, os.SEEK_END)
        if size:
            self._refuse_unless_a_log(fd)
        last, end = _tail(fd)
        if end < size and not _could_start_a_line(os.pread(fd, len(_LINE_START), end)):
            raise AuditRefused(
                f"The audit log {self.path} ends in {size - end} bytes with no newline that do "
                "not start like an audit line: not a line a stopped writer left, so they are "
                "not cut off. The suggestion was withheld and the file left as it was. Check "
                f"the log with `airgap-lsp audit verify --log {self.path}`; move those bytes "
                "out of it, or rotate it aside (rename it: a new one starts)."
            )
        if end < size:
            # A writer died mid-line. That line was never fsynced, so its reply was never sent:
            # no shown suggestion loses its record, and the chain goes on from a whole line.
            log.warning(
                "audit log %s ended with an unfinished line of %d bytes (a writer was stopped "
                "mid-write); dropped it before appending",
                self.path,
                size - end,
            )
            try:
                os.ftruncate(fd, end)
            except PermissionError as exc:
                raise AuditError(
                    f"The audit log {self.path} ends in an unfinished line ({size - end} bytes: a "
                    "writer was stopped mid-write) and the file refuses to be cut, so nothing "
                    "can chain on after it (an append-only file?); the suggestion was withheld. "
                    "An administrator can rotate the log aside (rename it: a new one starts) or "
                    "cut that last line off."
                ) from exc
        self._settle_mode(fd)
        too_big = self.max_bytes is not None and end > self.max_bytes
        if end and (too_big or (self.monthly and _month(last) != _month(None))):
            self._rotate()
            return False
        prev = _sha256(last) if end else self._prev_of_rotated()
        doc = asdict(record) | {"prev_sha256": prev}
        try:
            line = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        except UnicodeEncodeError:  # a lone surrogate: JSON's escape keeps it, in valid UTF-8
            line = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        try:
            _write_all(fd, line)
            os.fsync(fd)
        except OSError:
            self._cut_back(fd, end)
            raise
        if not end:
            _fsync_dir(self.path.parent)
        return True

    def _cut_back(self, fd: int, end: int) -> None:
        """After a failed write (a full disk, mid-line): the reply is withheld, so no part of its
        line may stay in the log. The lock is still held: nothing was appended after it."""
        try:
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)
        except OSError as exc:
            log.warning(
                "audit log %s: could not remove the unfinished line a failed write left (%s); "
                "the next write removes it",
                self.path,
                exc.strerror or exc,
            )

    def _settle_mode(self, fd: int) -> None:
        """0600, or 0640 and the policy's group: for a new log, and for one of ours that was
        created or changed otherwise (a log made readable by all is made private again)."""
        held = os.fstat(fd)
        mode = 0o600
        if self.group:
            import grp

            mode = 0o640
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError as exc:
                raise OSError(
                    22, f"the group {self.group!r} named for the audit log does not exist"
                ) from exc
            if held.st_gid != gid:
                os.fchown(fd, -1, gid)
        was = stat.S_IMODE(held.st_mode)
        if was == mode:
            return
        try:
            os.fchmod(fd, mode)
        except OSError as exc:
            raise AuditError(
                f"The audit log {self.path} has mode {was:04o} and cannot be given mode "
                f"{mode:04o} ({exc.strerror}): a file system without Unix permissions? The "
                "suggestion was withheld. Put the log on a file system that keeps them "
                "(setting auditPath, or the policy's [audit] path)."
            ) from exc
        if held.st_size:
            log.info("audit log %s had mode %04o; set to %04o", self.path, was, mode)

    def _still_the_log(self, fd: int) -> bool:
        try:
            named = os.lstat(self.path)  # a link swapped in is not the log: reopen, and refuse
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def _real(self) -> Path:
        """The log's own name in its folder's real path. The name itself is never resolved: if
        a link replaced the log since it was checked, a rename moves the link, not its target."""
        return Path(os.path.realpath(self.path.parent)) / self.path.name

    def _rotate(self) -> None:
        real = self._real()
        stamp = datetime.now(UTC).strftime(_STAMP)
        older = _rotated(real.parent, real.stem)
        if older:
            newest = _rotated_pattern(real.stem).fullmatch(older[-1].name)
            assert newest is not None
            if stamp <= newest[1]:  # the clock went back: keep the names in chain order
                after = datetime.strptime(newest[1], _STAMP) + timedelta(microseconds=1)
                stamp = after.strftime(_STAMP)
        target = real.parent / f"{real.stem}-{stamp}.jsonl"
        if target.exists():
            raise FileExistsError(17, f"rotated log {target} already exists")
        os.rename(real, target)
        _fsync_dir(real.parent)
        log.info("audit log %s rotated to %s", self.path, target)

    def _prev_of_rotated(self) -> str:
        """Where an empty log starts: after the newest rotated file, or at the genesis."""
        real = self._real()
        for older in reversed(_rotated(real.parent, real.stem)):
            rfd = os.open(older, os.O_RDONLY)
            try:
                last, end = _tail(rfd)
            finally:
                os.close(rfd)
            if end:
                return _sha256(last)
        return GENESIS


_JSON_TYPES: dict[str, tuple[type, str]] = {
    "str": (str, "a string"),
    "dict": (dict, "an object"),
    "list": (list, "an array"),
}


def _json_types(cls_fields: tuple[Any, ...]) -> dict[str, tuple[type, str]]:
    """Each field's JSON type, read from its annotation (a string: `dict[str, Any]`)."""
    out = {f.name: _JSON_TYPES[str(f.type).partition("[")[0]] for f in cls_fields}
    return out | {"prev_sha256": _JSON_TYPES["str"]}


_RECORD_TYPES = _json_types(fields(AuditRecord))
_EVENT_TYPES = _json_types(fields(AuditEvent))


def record_problem(doc: object) -> str:
    """Why a decoded line is not an audit record as this writer writes them; "" when it is.

    A record is a JSON object with every `AuditRecord` field (every `AuditEvent` field when its
    kind is in `EVENT_KINDS`) and `prev_sha256`, each of its type (string, object or array), a
    `time` in ISO 8601 and `context_sources` of objects; other keys are allowed. Readers of the
    log (report, provenance) rely on it, so a hostile line is named, not a traceback.
    """
    if not isinstance(doc, dict):
        return "JSON, but not an object"
    kind = doc.get("kind")
    if not isinstance(kind, str):
        return "no kind"
    types = _EVENT_TYPES if kind in EVENT_KINDS else _RECORD_TYPES
    missing = sorted(types.keys() - doc.keys())
    if missing:
        return f"missing {', '.join(missing)}"
    for name, (want, called) in types.items():
        if not isinstance(doc[name], want):
            return f"{name} is not {called}"
    if not all(isinstance(source, dict) for source in doc.get("context_sources", [])):
        return "context_sources holds something that is not an object"
    try:
        datetime.fromisoformat(doc["time"])
    except ValueError:
        return "time is not an ISO 8601 time"
    return ""


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


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
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


def _whole_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, sha256) of every complete line: the second pass that explains a break."""
    out = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if raw.endswith(b"\n"):
                out.append((n, _sha256(raw[:-1])))
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
            doc, problem = _parse(line)
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
                why = _why_unlinked(path, n, doc["prev_sha256"], _sha256(line), before, first_start)
                return _FileCheck(lines=n - 1, last_sha256=prev, broken=n, reason=why)
            prev = _sha256(line)
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
    files = _rotated(current.parent, current.stem)
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
