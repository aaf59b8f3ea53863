"""`verify` and `verify_chain` on real audit files: what each kind of tampering is reported as,
and that a writer killed mid-line or a rotation never leaves a log that fails to verify."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from audit.record import GENESIS, AuditError, AuditEvent
from audit.verify import VerifyResult, verify, verify_chain
from audit.writer import JsonlAudit
from tests.unit.test_audit import record
from tests.unit.test_report import cli as audit_cli

REPO = Path(__file__).resolve().parents[2]


def write_log(path: Path, count: int, *, max_bytes: int | None = None) -> None:
    sink = JsonlAudit(path, max_bytes=max_bytes)
    for i in range(count):
        sink.write(record(i))


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def put_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def assert_broken(result: VerifyResult, line: int, *words: str) -> None:
    assert not result.ok, result.reason
    assert result.first_broken == line, result.reason
    assert result.lines == line - 1
    assert result.reason.startswith(f"line {line}:"), result.reason
    for word in words:
        assert word in result.reason


@pytest.fixture
def six(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    return path


def test_a_valid_log_verifies(six: Path) -> None:
    result = verify(six)
    assert result == VerifyResult(
        ok=True,
        lines=6,
        first_broken=None,
        reason=result.reason,
        partial_tail=False,
        file=six,
        last_sha256=hashlib.sha256(lines_of(six)[-1]).hexdigest(),
    )
    assert "6 lines verified" in result.reason


def test_a_log_with_accept_events_verifies_and_an_event_needs_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAudit(path)
    sink.write(record(0))
    for kind in ("not_accepted", "accept"):
        sink.write(
            AuditEvent(
                id="test-0",
                time="2025-01-01T00:00:09Z",
                kind=kind,
                user={"name": "alice", "uid": 1000},
                host="ws-17",
                client={"name": "Neovim", "version": "0.11"},
                file="file:///ws/src/saturating.adb",
                reason="replaced" if kind == "not_accepted" else "",
            )
        )
    sink.write(record(1))
    assert verify(path).ok and verify(path).lines == 4
    lines = lines_of(path)
    doc = json.loads(lines[1])
    del doc["reason"]
    lines[1] = json.dumps(doc, separators=(",", ":")).encode()
    put_lines(path, lines)
    assert_broken(verify(path), 2, "missing reason")


def test_an_edited_value_names_the_line_after_it(six: Path) -> None:
    lines = lines_of(six)
    assert b'"text":"return 2;"' in lines[2]
    lines[2] = lines[2].replace(b'"text":"return 2;"', b'"text":"return 0;"')
    put_lines(six, lines)
    # Line 3 still parses and still chains from line 2; line 4 recorded what line 3 was.
    assert_broken(verify(six), 4, "does not match line 3", "line 3 was edited")


def test_a_line_edited_into_broken_json_names_itself(six: Path) -> None:
    lines = lines_of(six)
    lines[2] = lines[2][:-1]  # the closing brace
    put_lines(six, lines)
    assert_broken(verify(six), 3, "not valid JSON")


def test_a_line_missing_a_field_names_itself(six: Path) -> None:
    lines = lines_of(six)
    doc = json.loads(lines[2])
    del doc["prompt"]
    lines[2] = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    put_lines(six, lines)
    assert_broken(verify(six), 3, "missing prompt")


def test_a_deleted_line_names_the_line_now_in_its_place(six: Path) -> None:
    lines = lines_of(six)
    del lines[2]
    put_lines(six, lines)
    assert_broken(verify(six), 3, "does not match line 2")


def test_a_deleted_first_line_names_line_one(six: Path) -> None:
    put_lines(six, lines_of(six)[1:])
    assert_broken(verify(six), 1, "start of a log", "lines before it were removed")


def test_an_inserted_copy_names_the_inserted_line(six: Path) -> None:
    lines = lines_of(six)
    lines.insert(4, lines[1])  # a copy of line 2 after line 4
    put_lines(six, lines)
    assert_broken(verify(six), 5, "does not match line 4", "copy of line 2")


def test_two_swapped_lines_name_the_first_of_them(six: Path) -> None:
    lines = lines_of(six)
    lines[1], lines[2] = lines[2], lines[1]
    put_lines(six, lines)
    assert_broken(verify(six), 2, "does not match line 1", "chains from line 3", "swapped")


def test_a_forged_prev_sha256_names_its_own_line(six: Path) -> None:
    lines = lines_of(six)
    doc = json.loads(lines[3])
    doc["prev_sha256"] = "f" * 64
    lines[3] = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    put_lines(six, lines)
    assert_broken(verify(six), 4, "does not match line 3")


def test_an_edit_of_the_last_line_shows_only_against_a_kept_hash(six: Path) -> None:
    # The documented limit: nothing after the last line records what it was.
    kept = verify(six).last_sha256
    lines = lines_of(six)
    lines[-1] = lines[-1].replace(b"return 5;", b"return 0;")
    put_lines(six, lines)
    result = verify(six)
    assert result.ok
    assert result.last_sha256 != kept


def test_a_file_truncated_mid_line_verifies_up_to_the_last_whole_line(six: Path) -> None:
    data = six.read_bytes()
    six.write_bytes(data[: len(data) - 100])
    result = verify(six)
    assert result.ok and result.partial_tail
    assert result.lines == 5
    assert result.first_broken is None
    assert "unfinished line" in result.reason


def test_a_file_truncated_at_a_line_end_shows_only_against_a_kept_hash(six: Path) -> None:
    kept = verify(six).last_sha256
    put_lines(six, lines_of(six)[:4])
    result = verify(six)
    assert result.ok and result.lines == 4
    assert result.last_sha256 != kept


def test_an_empty_log_verifies_with_nothing_to_check(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.touch()
    result = verify(path)
    assert result.ok and result.lines == 0 and not result.partial_tail
    assert "empty" in result.reason


def test_a_missing_log_fails_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "audit.jsonl"
    for result in (verify(path), verify_chain(path), verify_chain(tmp_path)):
        assert not result.ok and result.lines == 0 and result.first_broken is None
    assert "does not exist" in verify(path).reason
    assert "holds no audit log" in verify_chain(tmp_path).reason


def torn(tmp_path: Path, whole: int) -> tuple[Path, bytes]:
    """A log of `whole` lines plus the first half of the next one, as a killed writer leaves it;
    and the bytes of the same log written without the kill."""
    clean = tmp_path / "clean.jsonl"
    write_log(clean, whole + 1)
    lines = lines_of(clean)
    path = tmp_path / "audit.jsonl"
    put_lines(path, lines[:whole])
    with path.open("ab") as fh:
        fh.write(lines[whole][: len(lines[whole]) // 2])
    return path, clean.read_bytes()


def test_a_torn_last_line_verifies_and_the_next_writer_drops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clean = torn(tmp_path, 3)
    whole = b"".join(line + b"\n" for line in clean.split(b"\n")[:3])
    dropped = path.stat().st_size - len(whole)
    result = verify(path)
    assert result.ok and result.partial_tail and result.lines == 3
    with caplog.at_level(logging.WARNING, logger="airgap_lsp.audit"):
        JsonlAudit(path).write(record(3))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert f"{dropped} bytes" in caplog.records[0].getMessage()
    assert path.read_bytes() == clean  # exactly the log an uninterrupted writer leaves
    result = verify(path)
    assert result.ok and not result.partial_tail and result.lines == 4


def test_a_torn_first_line_is_dropped_and_the_log_starts_at_the_genesis(tmp_path: Path) -> None:
    path, clean = torn(tmp_path, 0)
    assert verify(path).partial_tail and verify(path).lines == 0
    JsonlAudit(path).write(record(0))
    assert path.read_bytes() == clean.split(b"\n")[0] + b"\n"
    assert json.loads(path.read_bytes())["prev_sha256"] == GENESIS


WRITER = """
import json, sys
from pathlib import Path
from audit.record import AuditRecord
from audit.writer import JsonlAudit
doc = json.loads(sys.argv[2])
sink = JsonlAudit(Path(sys.argv[1]))
for i in range(1000):
    print("writing", i, flush=True)  # the parent kills on this line: mid-way, or just before
    sink.write(AuditRecord(**(doc | {"id": f"big-{i}", "text": str(i % 10) * 20_000_000})))
"""


def test_a_writer_killed_mid_write_leaves_a_log_that_verifies_and_continues(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    start = path.stat().st_size
    doc = json.dumps(dataclasses.asdict(record(2)))
    env = os.environ | {"PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), doc],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # Wait on the writer's word: the first record is written, the second is under way.
        assert child.stdout.readline().startswith("writing 0")
        assert child.stdout.readline().startswith("writing 1")
        assert child.poll() is None, "the writer exited before it could be killed"
        assert path.stat().st_size > start, "the writer never wrote"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    before = verify(path)
    assert before.ok, before.reason  # torn or not: only the unfinished line may be missing
    assert before.lines >= 2
    JsonlAudit(path).write(record(99))
    after = verify(path)
    assert after.ok and not after.partial_tail, after.reason
    assert after.lines == before.lines + 1
    assert json.loads(lines_of(path)[-1])["id"] == "test-99"


def rotated_log(tmp_path: Path, count: int = 30) -> Path:
    folder = tmp_path / "audit"
    one = len(json.dumps(dataclasses.asdict(record(10)), ensure_ascii=False).encode()) + 90
    write_log(folder / "audit.jsonl", count, max_bytes=3 * one)  # about four lines a file
    return folder


def test_a_rotated_log_verifies_as_one_chain(tmp_path: Path) -> None:
    folder = rotated_log(tmp_path)
    files = sorted(folder.iterdir())
    assert len(files) >= 5
    assert files[-1].name == "audit.jsonl"
    assert all(f.name.startswith("audit-2") for f in files[:-1])
    ids = [json.loads(line)["id"] for f in files for line in lines_of(f)]
    assert ids == [f"test-{i}" for i in range(30)]
    for given in (folder, folder / "audit.jsonl"):
        result = verify_chain(given)
        assert result.ok and result.lines == 30 and not result.partial_tail, result.reason
    # The current file alone starts mid-chain: verify says so and says how to go on.
    alone = verify(folder / "audit.jsonl")
    assert alone.first_broken == 1 and "--from-sha256" in alone.reason


def test_a_tampered_rotated_file_is_named_with_its_line(tmp_path: Path) -> None:
    folder = rotated_log(tmp_path)
    second = sorted(folder.iterdir())[1]
    lines = lines_of(second)
    assert len(lines) >= 3
    lines[0] = lines[0].replace(b'"host":"ws-17"', b'"host":"ws-18"')
    put_lines(second, lines)
    result = verify_chain(folder)
    assert not result.ok
    assert result.file == second
    assert result.first_broken == 2
    assert result.reason.startswith(f"{second.name} line 2: prev_sha256 does not match line 1")


def test_a_removed_rotated_file_breaks_the_chain_at_the_next_file(tmp_path: Path) -> None:
    folder = rotated_log(tmp_path)
    files = sorted(folder.iterdir())
    files[1].unlink()
    result = verify_chain(folder)
    assert not result.ok and result.file == files[2] and result.first_broken == 1
    assert f"the last line of {files[0].name}" in result.reason


def test_a_log_whose_older_files_were_archived_verifies_from_their_last_hash(
    tmp_path: Path,
) -> None:
    folder = rotated_log(tmp_path)
    files = sorted(folder.iterdir())
    archive = tmp_path / "archive"
    archive.mkdir()
    for old in files[:2]:
        old.rename(archive / old.name)
    cut = audit_cli("verify", "--log", str(folder / "audit.jsonl"))
    assert cut.returncode == 1 and "--from-sha256" in cut.stdout, cut.stdout
    archived = verify_chain(archive)  # the archived files alone: a log of their own
    assert archived.ok, archived.reason
    whole = audit_cli(
        "verify", "--log", str(folder / "audit.jsonl"), "--from-sha256", archived.last_sha256
    )
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert "the chain is whole" in whole.stdout
    wrong = audit_cli("verify", "--log", str(folder / "audit.jsonl"), "--from-sha256", "0" * 63)
    assert wrong.returncode == 2 and "64 hex digits" in wrong.stderr


def test_a_log_converted_to_crlf_line_ends_says_so(six: Path) -> None:
    six.write_bytes(six.read_bytes().replace(b"\n", b"\r\n"))
    assert_broken(verify(six), 1, "carriage return", "CRLF")


def _append_rotating(
    path: str, who: str, count: int, barrier: multiprocessing.synchronize.Barrier
) -> None:
    sink = JsonlAudit(Path(path), max_bytes=2000)
    barrier.wait(timeout=60)
    for i in range(count):
        sink.write(record(i, who=who))


def test_two_processes_rotating_one_log_keep_one_chain(tmp_path: Path) -> None:
    # A writer waiting on the lock of a file another writer has just rotated must not append to it.
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_append_rotating, args=(str(path), who, 25, barrier))
        for who in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    result = verify_chain(tmp_path)
    assert result.ok and result.lines == 50, result.reason
    assert len(list(tmp_path.iterdir())) > 5


def test_monthly_rotation_keeps_one_chain(tmp_path: Path) -> None:
    import json as _json

    log = tmp_path / "audit.jsonl"
    audit = JsonlAudit(log, monthly=True)
    audit.write(_monthly_record("a", "2026-10-31T23:59:00+00:00"))
    audit.write(_monthly_record("b", "2026-10-31T23:59:30+00:00"))  # last month: rotates now
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.jsonl")
    assert len(rotated) == 1 and rotated[0].startswith("audit-")
    assert [_json.loads(x)["id"] for x in (tmp_path / rotated[0]).read_text().splitlines()] == ["a"]
    assert verify_chain(log).ok and verify_chain(log).lines == 2


def test_a_group_named_for_the_log_can_read_it(tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getgid()).gr_name
    log = tmp_path / "audit.jsonl"
    JsonlAudit(log, group=group).write(_monthly_record("a", "2026-11-01T00:00:00+00:00"))
    assert log.stat().st_mode & 0o777 == 0o640
    assert log.stat().st_gid == os.getgid()
    with pytest.raises(AuditError, match="no-such-group-xyz"):
        JsonlAudit(tmp_path / "other.jsonl", group="no-such-group-xyz").write(
            _monthly_record("b", "2026-11-01T00:00:00+00:00")
        )


def _monthly_record(sid: str, time: str):  # type: ignore[no-untyped-def]
    return dataclasses.replace(record(0), id=sid, time=time)
