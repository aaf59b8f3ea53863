"""The audit log against what is not a log of ours: the writer refuses a link, a device, another
user's file or a file that is not a log, and leaves it as it was; the audit commands name a hostile
line (nested 200,000 deep, a field missing or of another type) instead of a traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from audit.record import AuditError
from audit.verify import verify
from audit.writer import JsonlAudit
from tests.unit.test_audit import record

THESIS = b"Chapter 1\n\nWhat the thesis says.\nThe last sentence, not yet ended"
ENDED = b"Chapter 1\n\nWhat the thesis says.\nThe end.\n"
NESTED = b"[" * 200_000


def airgap(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`airgap-lsp ARGS` as a user runs it, with an empty model store of its own."""
    env = os.environ | {"AIRGAP_LSP_MODEL_STORE": str(tmp_path / "models")}
    return subprocess.run(
        [sys.executable, "-m", "airgap_lsp", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def refused(sink: JsonlAudit) -> str:
    with pytest.raises(AuditError) as err:
        sink.write(record(9))
    message = str(err.value)
    assert str(sink.path) in message and "withheld" in message, message
    return message


# --- the writer ---------------------------------------------------------------------------------


def test_a_log_path_linked_to_another_file_is_refused_and_the_file_left_whole(
    tmp_path: Path,
) -> None:
    thesis = tmp_path / "thesis.txt"
    thesis.write_bytes(THESIS)  # its last line has no newline: a "torn tail" to a careless writer
    log = tmp_path / "audit.jsonl"
    log.symlink_to(thesis)
    assert "is a symbolic link" in refused(JsonlAudit(log))
    assert thesis.read_bytes() == THESIS
    assert log.is_symlink() and os.readlink(log) == str(thesis)


def test_monthly_rotation_through_a_link_renames_nothing(tmp_path: Path) -> None:
    docs, logs = tmp_path / "docs", tmp_path / "logs"
    docs.mkdir()
    logs.mkdir()
    thesis = docs / "thesis.txt"
    thesis.write_bytes(ENDED)  # its last line has no time: a month that is over, to a rotation
    log = logs / "audit.jsonl"
    log.symlink_to(thesis)
    assert "is a symbolic link" in refused(JsonlAudit(log, monthly=True))
    assert os.listdir(docs) == ["thesis.txt"] and thesis.read_bytes() == ENDED
    assert os.listdir(logs) == ["audit.jsonl"] and log.is_symlink()


@pytest.mark.parametrize(
    ("content", "monthly"),
    [(THESIS, False), (ENDED, True), (b"one line, no newline", False)],
    ids=["unended-last-line", "monthly", "one-unended-line"],
)
def test_a_file_that_is_not_an_audit_log_is_refused_and_left_as_it_was(
    tmp_path: Path, content: bytes, monthly: bool
) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_bytes(content)
    assert "is not an audit log: its first line" in refused(JsonlAudit(log, monthly=monthly))
    assert log.read_bytes() == content
    assert os.listdir(tmp_path) == ["audit.jsonl"]


def test_text_appended_to_a_log_without_a_newline_is_not_cut(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = JsonlAudit(log)
    sink.write(record(0))
    sink.write(record(1))
    with log.open("ab") as fh:
        fh.write(b"notes of mine, not yet saved elsewhere")
    before = log.read_bytes()
    assert "do not start like an audit line" in refused(sink)
    assert log.read_bytes() == before


def test_a_device_or_a_named_pipe_as_the_log_is_refused(tmp_path: Path) -> None:
    # /dev/null takes every line and keeps none: no suggestion may be shown as audited there.
    assert "is a character device" in refused(JsonlAudit(Path("/dev/null")))
    pipe = tmp_path / "audit.jsonl"
    os.mkfifo(pipe)
    assert "is a named pipe" in refused(JsonlAudit(pipe))
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_log_owned_by_another_user_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user (chown) needs root")
    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record(0))
    log.chmod(0o666)
    os.chown(log, 65534, 65534)  # another account's file, which this one can write
    before = log.read_bytes()
    assert "(uid 65534), not to" in refused(JsonlAudit(log))
    assert log.read_bytes() == before
    assert (log.stat().st_uid, stat.S_IMODE(log.stat().st_mode)) == (65534, 0o666)


@pytest.mark.parametrize(
    ("group", "was", "made"),
    [(False, 0o644, 0o600), (False, 0o640, 0o600), (True, 0o644, 0o640)],
    ids=["readable-by-all", "once-shared", "shared-and-readable-by-all"],
)
def test_an_existing_log_of_ours_gets_the_mode_a_new_one_has(
    tmp_path: Path, group: bool, was: int, made: int
) -> None:
    import grp

    name = grp.getgrgid(os.getgid()).gr_name if group else None
    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record(0))
    log.chmod(was)
    JsonlAudit(log, group=name).write(record(1))
    assert stat.S_IMODE(log.stat().st_mode) == made
    result = verify(log)
    assert result.ok and result.lines == 2, result.reason


# --- the audit commands -------------------------------------------------------------------------


def real_log(path: Path, count: int) -> None:
    sink = JsonlAudit(path)
    for n in range(count):
        sink.write(record(n))


def append_chained(path: Path, doc: dict[str, object]) -> None:
    """Append `doc` chained from the last line: only what it holds can be wrong with it."""
    last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    line = json.dumps(doc | {"prev_sha256": hashlib.sha256(last).hexdigest()}).encode()
    with path.open("ab") as fh:
        fh.write(line + b"\n")


def _decoding(**fields: object) -> dict[str, object]:
    doc = dataclasses.asdict(record(1))
    # What a replay reads of the decoding, as the server writes it, and the fields given.
    server = {"multiline": False, "base_indent": 0, "forced_prefix": "", "refuse_start": ""}
    return doc | {"decoding": {**doc["decoding"], **server, **fields}}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (NESTED, "JSON nested too deeply to read"),
        (b'{"id":' + b"1" * 5000 + b"}", "a number too long to read"),
    ],
    ids=["nested", "long-number"],
)
def test_verify_names_a_line_nested_200000_deep_as_broken(
    tmp_path: Path, line: bytes, problem: str
) -> None:
    log = tmp_path / "audit.jsonl"
    real_log(log, 2)
    with log.open("ab") as fh:
        fh.write(line + b"\n")
    out = airgap(tmp_path, "audit", "verify", "--log", str(log))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"line 3: not an audit record ({problem})" in out.stdout, out.stdout
    assert f"first broken line: 3 of {log}" in out.stdout, out.stdout


@pytest.mark.parametrize(
    "command",
    [("audit", "report"), ("audit", "report", "--json"), ("provenance", "-")],
    ids=["report", "report-json", "provenance"],
)
def test_report_and_provenance_name_a_line_nested_200000_deep(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    log = tmp_path / "audit.jsonl"
    real_log(log, 2)
    with log.open("ab") as fh:
        fh.write(NESTED + b"\n")
    out = airgap(tmp_path, *command, "--log", str(log))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{log} line 3 is not an audit record (JSON nested too deeply" in out.stderr
    assert "audit verify" in out.stderr


def _without_id(doc: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k != "id"}


@pytest.mark.parametrize(
    ("hostile", "problem"),
    [
        (_without_id, "missing id"),
        (lambda doc: doc | {"user": "mallory"}, "user is not an object"),
        (lambda doc: doc | {"time": 1767225600}, "time is not a string"),
    ],
    ids=["id-missing", "user-a-string", "time-a-number"],
)
def test_report_and_verify_name_a_record_missing_a_field_or_of_another_type(
    tmp_path: Path, hostile: Callable[[dict[str, object]], dict[str, object]], problem: str
) -> None:
    log = tmp_path / "audit.jsonl"
    real_log(log, 1)
    append_chained(log, hostile(dataclasses.asdict(record(1))))
    report = airgap(tmp_path, "audit", "report", "--log", str(log))
    assert report.returncode == 1 and "Traceback" not in report.stderr, report.stderr
    assert f"{log} line 2 is not an audit record ({problem})" in report.stderr, report.stderr
    checked = airgap(tmp_path, "audit", "verify", "--log", str(log))
    assert checked.returncode == 1 and "Traceback" not in checked.stderr, checked.stderr
    assert f"line 2: not an audit record ({problem})" in checked.stdout, checked.stdout
    assert f"first broken line: 2 of {log}" in checked.stdout


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (NESTED + b'"test-1"', "line 2 is not an audit record (JSON nested too deeply to read)"),
        (
            json.dumps(dataclasses.asdict(record(1)) | {"model": "tiny@1"}).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it (model is not an object)",
        ),
        (
            json.dumps(_decoding(refuse_first="end if;")).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.refuse_first is not an array)",
        ),
        (
            json.dumps(_decoding(refuse_first=["end if;", 7])).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.refuse_first holds something that is not a string)",
        ),
        (
            json.dumps(_decoding(refuse_first=["x"] * 100_000)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.refuse_first holds more than the server ever refuses (8))",
        ),
        (
            json.dumps(_decoding(refuse_start=" " * 1_000_000)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.refuse_start is longer than the server ever writes it)",
        ),
        (
            json.dumps(_decoding(drafts_from=[12, "x"])).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.drafts_from holds something that is not a token id)",
        ),
        (
            json.dumps(_decoding() | {"timings": {"new_tokens": -1}}).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(timings.new_tokens is not a count of tokens)",
        ),
        (
            json.dumps(_decoding(drafts_from=[7] * 100_000)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.drafts_from holds more tokens than a suggestion has (4096))",
        ),
        (
            json.dumps(_decoding(piece_repeats=1)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.piece_repeats is not a count the server ever writes)",
        ),
        (
            json.dumps(_decoding(piece_repeats="4")).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.piece_repeats is not a whole number)",
        ),
        (
            json.dumps(_decoding(piece_repeats=True)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.piece_repeats is not a whole number)",
        ),
        (
            json.dumps(_decoding(line_before="x" * 1_000_000)).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.line_before is longer than the text its prompt holds, or not one line)",
        ),
        (
            json.dumps(_decoding(line_before="x\ny") | {"prompt": "a = 1\nb = x\ny"}).encode(),
            "line 2 holds suggestion test-1, but not as a replay needs it "
            "(decoding.line_before is longer than the text its prompt holds, or not one line)",
        ),
    ],
    ids=[
        "nested",
        "model-a-string",
        "refused-a-string",
        "refused-a-number",
        "refused-too-many",
        "refuse-start-too-long",
        "drafts-not-ids",
        "written-negative",
        "drafts-too-many",
        "piece-repeats-one",
        "piece-repeats-a-string",
        "piece-repeats-true",
        "line-before-too-long",
        "line-before-two-lines",
    ],
)
def test_replay_names_a_hostile_line_holding_the_id(
    tmp_path: Path, line: bytes, problem: str
) -> None:
    log = tmp_path / "audit.jsonl"
    real_log(log, 1)
    with log.open("ab") as fh:
        fh.write(line + b"\n")
    out = airgap(tmp_path, "audit", "replay", "test-1", "--log", str(log))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{log} {problem}" in out.stderr, out.stderr


def test_replay_of_a_line_decoded_in_a_way_this_version_does_not_know_says_so(
    tmp_path: Path,
) -> None:
    # A line a newer version wrote (or an altered one): refused with what to do, before any
    # model is looked for, rather than replayed another way.
    log = tmp_path / "audit.jsonl"
    real_log(log, 1)
    append_chained(log, _decoding(steps="dynamic cache, attention packed some newer way"))
    out = airgap(tmp_path, "audit", "replay", "test-1", "--log", str(log))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "'dynamic cache, attention packed some newer way' (decoding.steps)" in out.stderr
    assert "Replay it with the version that wrote the line" in out.stderr, out.stderr
