"""The audit report counts suggestions and their fate from a real audit log."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from audit.record import AuditEvent, AuditRecord
from audit.writer import JsonlAudit


def record(sid: str, time: str, language: str, user: str = "ada") -> AuditRecord:
    return AuditRecord(
        id=sid,
        time=time,
        kind="inline_completion",
        user={"name": user, "uid": 1000},
        host="ws1",
        client={"name": "nvim", "version": "0.12"},
        file="file:///x",
        position={},
        language=language,
        model={
            "name": "m",
            "version": "1",
            "manifest_sha256": "0" * 64,
            "family": "llama",
            "prompt_format": "prefix-only",
        },
        device="cpu",
        dtype="float32",
        decoding={},
        prompt="p",
        text="t",
    )


def event(kind: str, sid: str, time: str) -> AuditEvent:
    return AuditEvent(
        id=sid,
        time=time,
        kind=kind,
        user={"name": "ada", "uid": 1000},
        host="ws1",
        client={},
        file="file:///x",
        reason="",
    )


def test_report_counts_by_dimension_and_acceptance_within_the_period(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = JsonlAudit(log)
    for rec in (
        record("a", "2026-10-31T23:00:00+00:00", "ada"),  # before the period
        record("b", "2026-11-02T10:00:00+00:00", "ada"),
        record("c", "2026-11-02T10:01:00+00:00", "vhdl", user="grace"),
        event("not_accepted", "b", "2026-11-02T10:01:00+00:00"),
        record("d", "2026-11-03T09:00:00+00:00", "ada"),
        event("accept", "d", "2026-11-03T09:00:02+00:00"),
        event("accept", "c", "2026-11-03T09:00:03+00:00"),
        record("e", "2026-12-01T00:00:00+00:00", "ada"),  # after it
    ):
        audit.write(rec)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "airgap_lsp",
            "audit",
            "report",
            "--log",
            str(log),
            "--since",
            "2026-11-01T00:00:00+00:00",
            "--until",
            "2026-12-01T00:00:00+00:00",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    summary = json.loads(out.stdout)
    assert summary["suggestions"] == 3
    assert summary["outcome"] == {"not accepted": 1, "accepted": 2}
    assert summary["by"]["language"] == {
        "ada": {"suggested": 2, "accepted": 1},
        "vhdl": {"suggested": 1, "accepted": 1},
    }
    assert summary["by"]["user"]["grace (1000)@ws1"] == {"suggested": 1, "accepted": 1}
    assert summary["by"]["model"] == {"m@1": {"suggested": 3, "accepted": 2}}

    text = subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", "report", "--log", str(log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert text.startswith("5 suggestions")
    assert "by language:" in text and "vhdl" in text


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airgap_lsp", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_replay_and_provenance_read_the_rotated_files_through_a_linked_log(
    tmp_path: Path,
) -> None:
    from audit.files import read_records
    from audit.replay import find_record

    real = tmp_path / "var" / "audit.jsonl"
    real.parent.mkdir()
    sink = JsonlAudit(real, max_bytes=1500)  # a few lines a file
    ids = [f"s{n:02d}" for n in range(12)]
    for sid in ids:
        sink.write(record(sid, "2026-11-20T10:00:00+00:00", "ada"))
    rotated = sorted(p.name for p in real.parent.iterdir() if p.name != real.name)
    assert len(rotated) >= 3, rotated
    linked = tmp_path / "audit.jsonl"
    linked.symlink_to(real)  # an auditor's link to the log (the writer refuses to write one)

    out = cli("report", "--json", "--log", str(linked))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["suggestions"] == len(ids)
    assert find_record(linked, ids[0])["id"] == ids[0]  # in the oldest file
    assert [r["id"] for r in read_records(linked)] == ids


def test_report_says_what_is_wrong_with_a_damaged_log_or_a_bad_date(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record("a", "2026-11-20T10:00:00+00:00", "ada"))
    with log.open("ab") as fh:
        fh.write(b"\xff\xfe not a record\n")
    damaged = cli("report", "--log", str(log))
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert "line 2 is not a JSON audit record" in damaged.stderr, damaged.stderr
    assert "audit verify" in damaged.stderr
    bad_date = cli("report", "--since", "last tuesday", "--log", str(log))
    assert bad_date.returncode == 1 and "Traceback" not in bad_date.stderr
    assert "--since 'last tuesday' is not a date or time" in bad_date.stderr, bad_date.stderr


def test_the_rest_shown_again_as_it_was_typed_is_the_same_suggestion(tmp_path: Path) -> None:
    from audit.report import summarise

    def again(sid: str, origin: str) -> AuditRecord:
        shown = record(sid, "2026-11-02T10:00:05+00:00", "ada")
        return dataclasses.replace(shown, result={"served_from": origin, "typed": "x"})

    log = tmp_path / "audit.jsonl"
    audit = JsonlAudit(log)
    for rec in (
        record("a", "2026-11-02T10:00:00+00:00", "ada"),
        again("a1", "a"),
        event("not_accepted", "a", "2026-11-02T10:00:05+00:00"),
        again("a2", "a"),
        event("not_accepted", "a1", "2026-11-02T10:00:06+00:00"),
        event("accept", "a2", "2026-11-02T10:00:07+00:00"),  # the user took the rest
        record("b", "2026-11-02T10:01:00+00:00", "ada"),
        again("b1", "b"),
        event("not_accepted", "b", "2026-11-02T10:01:01+00:00"),
        event("not_accepted", "b1", "2026-11-02T10:01:02+00:00"),
    ):
        audit.write(rec)
    summary = summarise(json.loads(line) for line in log.read_text().splitlines())
    assert summary["suggestions"] == 2 and summary["shown_again_as_typed"] == 3
    assert summary["outcome"] == {"accepted": 1, "not accepted": 1}


def test_replay_takes_an_unfinished_last_line_for_no_record(tmp_path: Path) -> None:
    import pytest

    from airgap_lsp.errors import AirgapError
    from audit.replay import find_record

    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record("a", "2026-11-20T10:00:00+00:00", "ada"))
    with log.open("ab") as fh:
        fh.write(b'{"id":"b","kind":"inline_completion","prompt":"p')  # a writer stopped
    assert find_record(log, "a")["id"] == "a"
    with pytest.raises(AirgapError, match="No suggestion with id b"):  # it was never shown
        find_record(log, "b")
