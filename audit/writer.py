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
import json
import logging
import os
import pwd
import stat
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.files import first_line, line_sha256, parse_line, rotated_files, rotated_pattern, tail
from audit.record import GENESIS, AuditError, AuditEvent, AuditRecord, AuditRefused

_STAMP = "%Y%m%dT%H%M%S%f"  # UTC, fixed width: rotated names sort by time
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


def _month(line: bytes | None) -> str:
    """`YYYY-MM` of a line's time (UTC), or of now for None; "" when the line has no time."""
    if line is None:
        return datetime.now(UTC).strftime("%Y-%m")
    try:
        moment = datetime.fromisoformat(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m")


def _account(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _could_start_a_line(head: bytes) -> bool:
    """Whether bytes read where a line starts could be the start of one of ours (a stopped
    writer may have written only a few of its bytes)."""
    return _LINE_START.startswith(head[: len(_LINE_START)])


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
        elif (first := first_line(fd)) is None:
            return  # one unfinished line, as a writer stopped in the first one leaves it
        else:
            problem = parse_line(first)[1]
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
        last, end = tail(fd)
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
        prev = line_sha256(last) if end else self._prev_of_rotated()
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
        older = rotated_files(real.parent, real.stem)
        if older:
            newest = rotated_pattern(real.stem).fullmatch(older[-1].name)
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
        for older in reversed(rotated_files(real.parent, real.stem)):
            rfd = os.open(older, os.O_RDONLY)
            try:
                last, end = tail(rfd)
            finally:
                os.close(rfd)
            if end:
                return line_sha256(last)
        return GENESIS
