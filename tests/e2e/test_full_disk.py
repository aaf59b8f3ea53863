"""A full disk while the audit line is written: the suggestion is withheld, the user is told the
disk is full and what to do, the log keeps no half line, and once space is freed the next
suggestion is shown and audited, chained to the last line before.

The disk is real: the server runs in its own user and mount namespaces (`unshare -rm`, no root
needed) with the audit log on a small tmpfs; the test fills that tmpfs, and frees it, through
the server's view of the file system (/proc/PID/root).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types

from tests.conftest import CursorFile, cursor_file
from tests.e2e.test_hover_actions import Watch
from tests.e2e.test_inline_completion import complete, open_doc, start
from tests.e2e.test_killed_server import WAIT_S, served, verify_cli, whole_lines

DISK_SIZE = "1m"
# Mount a tmpfs on the folder given as $1 (visible to this process and its children only), then
# run the rest of the arguments in its place: the pid the test knows is the server's.
MOUNTED = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'

pytestmark = pytest.mark.e2e


def in_own_namespaces(disk: Path, *command: str) -> list[str]:
    return ["unshare", "-rm", "sh", "-c", MOUNTED, "sh", DISK_SIZE, str(disk), *command]


def need_namespaces(disk: Path) -> None:
    """Fail, saying why, where this machine cannot make a private tmpfs: never skip quietly."""
    why = ""
    try:
        probe = subprocess.run(
            in_own_namespaces(disk, "true"), capture_output=True, text=True, timeout=60
        )
        why = probe.stderr.strip() if probe.returncode else ""
    except FileNotFoundError as exc:
        why = str(exc)
    if why:
        pytest.fail(
            "This test needs unprivileged user and mount namespaces to mount a small tmpfs, a "
            f"real disk that fills up (`unshare -rm` from util-linux, and `mount`): {why}. "
            "Where the kernel refuses them, allow them (sysctl kernel.unprivileged_userns_clone=1 "
            "or user.max_user_namespaces > 0; on Ubuntu also "
            "kernel.apparmor_restrict_unprivileged_userns=0)."
        )


def fill(path: Path) -> None:
    """Write until the file system says it is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def long_buffer() -> CursorFile:
    """The sensors fixture under a long revision history: a prompt, and so an audit line, longer
    than a page of the disk, which no free room at the end of the log's last page can hold."""
    doc = cursor_file("completion/sensors.adb")
    history = [
        f"--  r{n:03d}  sensor table revised: channel {n % 16} recalibrated, limits checked"
        for n in range(50)
    ]
    return CursorFile(
        path=doc.path,
        text="\n".join([*history, doc.text]),
        line=doc.line + len(history),
        character=doc.character,
    )


async def test_a_full_disk_withholds_the_suggestion_until_space_is_freed(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    need_namespaces(disk)
    audit = disk / "audit" / "audit.jsonl"  # the server's path, on its tmpfs
    command = in_own_namespaces(disk, sys.executable, "-m", "airgap_lsp", "serve")

    async with served(command) as client:
        watch = Watch(client)
        pid = client._server.pid  # noqa: SLF001
        seen = Path(f"/proc/{pid}/root") / disk.relative_to("/")  # the tmpfs, as the server sees it
        log = seen / "audit" / "audit.jsonl"
        await start(client, audit, maxPrefixChars=8000)
        doc = long_buffer()
        uri = open_doc(client, doc, "ada")
        first = await asyncio.wait_for(complete(client, uri, doc), WAIT_S)
        assert first and first[0].strip(), first
        before = log.read_bytes()
        assert before.count(b"\n") == 1
        assert len(before) > os.statvfs(seen).f_bsize, "the line must not fit in a page's slack"

        fill(seen / "filler")
        assert os.statvfs(seen).f_bavail == 0
        with pytest.raises(Exception, match="No space left on device") as caught:
            await asyncio.wait_for(complete(client, uri, doc), WAIT_S)

        assert "withheld" in str(caught.value)
        told = await asyncio.wait_for(watch.message("No space left on device"), WAIT_S)
        assert told.type == types.MessageType.Error
        assert str(audit) in told.message and "Free disk space" in told.message
        assert watch.status[-1]["state"] == "error"
        assert "No space left on device" in watch.status[-1]["message"]
        assert log.read_bytes() == before, "the failed write left bytes in the log"

        (seen / "filler").unlink()
        again = await asyncio.wait_for(complete(client, uri, doc), WAIT_S)

        # Served again once space is freed. (Not necessarily the first text: the first request
        # read its prompt whole, this one from the kept key/values, and in bfloat16 on a CPU with
        # AMX the two round a near tie apart.)
        assert again and again[0].strip(), again
        assert watch.status[-1]["state"] == "ready"  # the error shown in the status bar is over
        lines = whole_lines(log)
        assert lines[0] + b"\n" == before
        shown = json.loads(lines[1])
        assert shown["kind"] == "inline_completion" and shown["text"] == again[0]
        assert shown["prev_sha256"] == hashlib.sha256(lines[0]).hexdigest()
        kept = tmp_path / "audit.jsonl"
        shutil.copyfile(log, kept)  # the tmpfs goes with the server's namespace

    verified = verify_cli(kept)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "the chain is whole" in verified.stdout, verified.stdout
