"""Provenance marks the lines of a real `git diff` with the suggestions of a real audit log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from audit.files import read_records
from audit.provenance import (
    AddedLine,
    Mark,
    added_lines,
    format_json,
    format_text,
    provenance,
)
from audit.record import AuditEvent, AuditRecord
from audit.writer import JsonlAudit

ORIGINAL = """\
package body Autopilot is

   procedure Hold (Requested : Altitude) is
      Target : Altitude;
   begin
      null;
   end Hold;

end Autopilot;
"""

EDITED = """\
package body Autopilot is

   procedure Hold (Requested : Altitude) is
      Target : Altitude;
   begin
      Target := Clamp_Altitude (Requested);
      if Target > Ceiling then
         Target := Ceiling;
      end if;
      Trace (Target,
             Ceiling
      );
      Set_Point (Target);
      Engage_Hold;
      Log (Target);
      null;
   end Hold;

end Autopilot;
"""

Session = tuple[str, list[dict[str, Any]]]

SHA = "5f3c2a9e81b04d7712aa" + "0" * 44


def git(repo: Path, *args: str) -> str:
    env = os.environ | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    return done.stdout.decode("utf-8")


def new_repo(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def write(repo: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def suggestion(sid: str, time: str, file: Path, text: str) -> AuditRecord:
    return AuditRecord(
        id=sid,
        time=time,
        kind="inline_completion",
        user={"name": "ada", "uid": 1000},
        host="ws1",
        client={"name": "nvim", "version": "0.12"},
        file=file.as_uri(),
        position={"line": 5, "character": 16},
        language="ada",
        model={
            "name": "starcoder2-3b",
            "version": "1",
            "manifest_sha256": SHA,
            "family": "starcoder2",
            "prompt_format": "fim",
        },
        device="cpu",
        dtype="float32",
        decoding={"greedy": True},
        prompt="p",
        text=text,
        context_sources=[
            {"path": "src/altitude.ads", "lines": [1, 20], "sha256": "1" * 64},
            {"path": "src/altitude.ads", "lines": [30, 40], "sha256": "2" * 64},
            {"path": "src/limits.ads", "lines": [1, 5], "sha256": "3" * 64},
        ],
    )


def event(kind: str, sid: str, time: str, file: Path) -> AuditEvent:
    return AuditEvent(
        id=sid,
        time=time,
        kind=kind,
        user={"name": "ada", "uid": 1000},
        host="ws1",
        client={"name": "nvim", "version": "0.12"},
        file=file.as_uri(),
        reason="replaced" if kind == "not_accepted" else "",
    )


def audit_log(path: Path, items: list[AuditRecord | AuditEvent]) -> list[dict[str, Any]]:
    audit = JsonlAudit(path)
    for item in items:
        audit.write(item)
    return list(read_records(path))


@pytest.fixture
def session(tmp_path: Path) -> Session:
    """The diff of an edited src/autopilot.adb, and the log of the session that edited it."""
    repo = new_repo(tmp_path, {"src/autopilot.adb": ORIGINAL})
    write(repo, {"src/autopilot.adb": EDITED})
    diff = git(repo, "diff")
    src = repo / "src" / "autopilot.adb"
    lines = audit_log(
        tmp_path / "audit" / "audit.jsonl",
        [
            suggestion("s-clamp", "2026-11-02T10:00:00+00:00", src, "Clamp_Altitude (Requested);"),
            event("accept", "s-clamp", "2026-11-02T10:00:01+00:00", src),
            suggestion(
                "s-ceiling",
                "2026-11-02T10:01:00+00:00",
                src,
                "if Target > Ceiling then\n         Target := Ceiling;\n      end if;",
            ),
            event("accept", "s-ceiling", "2026-11-02T10:01:02+00:00", src),
            suggestion(
                "s-trace",
                "2026-11-02T10:02:00+00:00",
                src,
                "Trace (Target,\n             Ceiling\n      );",
            ),
            event("accept", "s-trace", "2026-11-02T10:02:01+00:00", src),
            suggestion("s-shown", "2026-11-02T10:03:00+00:00", src, "Set_Point (Target);"),
            event("not_accepted", "s-shown", "2026-11-02T10:03:05+00:00", src),
            suggestion("s-silent", "2026-11-02T10:04:00+00:00", src, "Engage_Hold;"),
            # the same text as an added line, but for other files: must not mark it
            suggestion(
                "s-xsrc", "2026-11-02T10:05:00+00:00", repo / "xsrc/autopilot.adb", "Log (Target);"
            ),
            event("accept", "s-xsrc", "2026-11-02T10:05:01+00:00", repo / "xsrc/autopilot.adb"),
            suggestion(
                "s-other", "2026-11-02T10:06:00+00:00", repo / "src/other.adb", "Log (Target);"
            ),
            event("accept", "s-other", "2026-11-02T10:06:01+00:00", repo / "src/other.adb"),
        ],
    )
    return diff, lines


def by_line(marks: list[Mark]) -> dict[int, tuple[str, bool]]:
    return {m.line.line: (m.suggestion_id, m.accepted) for m in marks}


def test_a_completion_of_a_started_line_marks_it_with_its_new_line_number(session: Session) -> None:
    diff, lines = session
    p = provenance(diff, lines)
    mark = next(m for m in p.marks if m.suggestion_id == "s-clamp")
    assert mark.line == AddedLine(
        path="src/autopilot.adb", line=6, text="      Target := Clamp_Altitude (Requested);"
    )
    assert mark.accepted
    assert mark.user == {"name": "ada", "uid": 1000}
    assert mark.host == "ws1"
    assert mark.model["manifest_sha256"] == SHA
    assert [s["path"] for s in mark.context_sources][0] == "src/altitude.ads"


def test_every_line_of_a_multi_line_suggestion_is_marked_but_short_lines_are_not(
    session: Session,
) -> None:
    diff, lines = session
    marks = by_line(provenance(diff, lines).marks)
    assert marks[7] == marks[8] == marks[9] == ("s-ceiling", True)
    assert marks[10] == marks[11] == ("s-trace", True)
    assert 12 not in marks  # "      );" is 2 characters stripped, though the suggestion has it


def test_shown_but_not_accepted_suggestions_are_unaccounted(session: Session) -> None:
    diff, lines = session
    p = provenance(diff, lines)
    assert by_line(p.unaccounted) == {13: ("s-shown", False), 14: ("s-silent", False)}
    assert p.added == 10
    assert len(p.marks) == 8


def test_a_suggestion_for_another_file_does_not_mark(session: Session) -> None:
    diff, lines = session
    marks = by_line(provenance(diff, lines).marks)
    assert 15 not in marks  # "Log (Target);" was suggested for xsrc/autopilot.adb and other.adb
    assert all(m.suggestion_id not in ("s-xsrc", "s-other") for m in provenance(diff, lines).marks)


def test_accepted_wins_over_not_accepted_and_the_latest_accepted_wins(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"src/autopilot.adb": ORIGINAL})
    write(repo, {"src/autopilot.adb": EDITED})
    diff = git(repo, "diff")
    src = repo / "src" / "autopilot.adb"
    lines = audit_log(
        tmp_path / "audit.jsonl",
        [
            suggestion("old", "2026-11-02T09:00:00+00:00", src, "Set_Point (Target);"),
            event("accept", "old", "2026-11-02T09:00:01+00:00", src),
            suggestion("new", "2026-11-02T10:00:00+00:00", src, "Set_Point (Target);"),
            event("accept", "new", "2026-11-02T10:00:01+00:00", src),
            # an accept is final: a later not_accepted for the same id does not undo it
            event("not_accepted", "new", "2026-11-02T10:00:09+00:00", src),
            suggestion("newest-shown", "2026-11-02T11:00:00+00:00", src, "Set_Point (Target);"),
            event("not_accepted", "newest-shown", "2026-11-02T11:00:01+00:00", src),
        ],
    )
    p = provenance(diff, lines)
    assert by_line(p.marks) == {13: ("new", True)}
    assert p.unaccounted == []


def test_text_and_json_output(session: Session) -> None:
    diff, lines = session
    p = provenance(diff, lines)
    text = format_text(p).splitlines()
    assert text[0] == (
        "src/autopilot.adb:6  <- suggestion s-clamp (accepted) at 2026-11-02T10:00:00+00:00 by "
        "ada@ws1, model starcoder2-3b@1 (5f3c2a9e81b0), context: src/altitude.ads, src/limits.ads"
    )
    assert "src/autopilot.adb:13  <- suggestion s-shown (NOT accepted)" in text[-3]
    assert text[-1] == "8 of 10 added lines come from suggestions; 2 without an accept on record"
    doc = json.loads(format_json(p))
    assert (doc["added"], doc["marked"], doc["unaccounted"]) == (10, 8, 2)
    assert doc["marks"][0]["path"] == "src/autopilot.adb"
    assert doc["marks"][0]["line"] == 6
    assert doc["marks"][0]["suggestion_id"] == "s-clamp"
    assert doc["unaccounted_lines"] == [
        {"path": "src/autopilot.adb", "line": 13, "suggestion_id": "s-shown"},
        {"path": "src/autopilot.adb", "line": 14, "suggestion_id": "s-silent"},
    ]


def test_an_empty_diff_marks_nothing() -> None:
    p = provenance("", [])
    assert (p.marks, p.added, p.unaccounted) == ([], 0, [])
    assert (
        format_text(p) == "0 of 0 added lines come from suggestions; 0 without an accept on record"
    )


# --- diff parsing on real git output -----------------------------------------------------------


def test_new_file_deleted_file_and_binary_file(tmp_path: Path) -> None:
    repo = new_repo(
        tmp_path,
        {"src/old.adb": "-- retired\n--  still retired\nprocedure Old is\nend Old;\n"},
    )
    git(repo, "rm", "-q", "src/old.adb")
    write(
        repo,
        {
            "data/logo.bin": bytes(range(256)),
            "src/fresh.adb": "procedure Fresh is\nbegin\n   null;\nend Fresh;\n",
        },
    )
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached")
    assert "--- /dev/null" in diff and "+++ /dev/null" in diff and "Binary files" in diff
    assert added_lines(diff) == [
        AddedLine(path="src/fresh.adb", line=1, text="procedure Fresh is"),
        AddedLine(path="src/fresh.adb", line=2, text="begin"),
        AddedLine(path="src/fresh.adb", line=3, text="   null;"),
        AddedLine(path="src/fresh.adb", line=4, text="end Fresh;"),
    ]


def test_two_hunks_count_new_line_numbers_in_the_second(tmp_path: Path) -> None:
    body = [f"   X{n} := {n};" for n in range(1, 31)]
    repo = new_repo(tmp_path, {"src/table.adb": "\n".join(body) + "\n"})
    edited = body[:2] + ["   Inserted_A := 1;", "   Inserted_B := 2;"] + body[2:]
    edited = edited[:26] + ["   Late := 3;"] + edited[27:]  # replaces X25
    write(repo, {"src/table.adb": "\n".join(edited) + "\n"})
    diff = git(repo, "diff")
    assert diff.count("\n@@ ") == 2
    assert added_lines(diff) == [
        AddedLine(path="src/table.adb", line=3, text="   Inserted_A := 1;"),
        AddedLine(path="src/table.adb", line=4, text="   Inserted_B := 2;"),
        AddedLine(path="src/table.adb", line=27, text="   Late := 3;"),
    ]
    assert edited[26] == "   Late := 3;"


def test_a_rename_with_changes_names_the_new_path(tmp_path: Path) -> None:
    text = "".join(f"   Line_{n} := {n};\n" for n in range(10))
    repo = new_repo(tmp_path, {"src/nav.adb": text})
    git(repo, "mv", "src/nav.adb", "src/navigation.adb")
    write(repo, {"src/navigation.adb": text + "   Added := 1;\n"})
    git(repo, "add", "-A")
    diff = git(repo, "diff", "--cached", "-M")
    assert "rename from src/nav.adb" in diff
    assert added_lines(diff) == [
        AddedLine(path="src/navigation.adb", line=11, text="   Added := 1;")
    ]


def test_no_newline_at_end_and_header_looking_content(tmp_path: Path) -> None:
    repo = new_repo(
        tmp_path,
        {"src/tail.adb": "A := 1;\nB := 2;", "src/count.c": "int f(int count) {\n-- count;\n}\n"},
    )
    write(
        repo,
        {
            "src/tail.adb": "A := 1;\nB := 3;\nC := 4;",
            "src/count.c": "int f(int count) {\n++ count;\n}\n",
        },
    )
    diff = git(repo, "diff")
    assert "\\ No newline at end of file" in diff
    assert "--- count;\n+++ count;" in diff  # a removed and an added line, not a file header
    assert added_lines(diff) == [
        AddedLine(path="src/count.c", line=2, text="++ count;"),
        AddedLine(path="src/tail.adb", line=2, text="B := 3;"),
        AddedLine(path="src/tail.adb", line=3, text="C := 4;"),
    ]


def test_mnemonic_prefixes_and_quoted_names(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, {"src/höhe.adb": "H := 0;\n"})
    write(repo, {"src/höhe.adb": "H := 0;\nH := 1;\n"})
    diff = git(repo, "-c", "diff.mnemonicPrefix=true", "diff")
    assert '+++ "w/src/h\\303\\266he.adb"' in diff
    assert added_lines(diff) == [AddedLine(path="src/höhe.adb", line=2, text="H := 1;")]
    plain = git(repo, "-c", "core.quotePath=false", "diff", "--no-prefix")
    assert added_lines(plain) == [AddedLine(path="src/höhe.adb", line=2, text="H := 1;")]


def test_diff_u_output(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.adb.orig").write_text("A := 1;\n")
    (tmp_path / "src/a.adb").write_text("A := 1;\nB := 2;\n")
    done = subprocess.run(
        ["diff", "-u", "src/a.adb.orig", "src/a.adb"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and "+++ src/a.adb\t" in done.stdout
    assert added_lines(done.stdout) == [AddedLine(path="src/a.adb", line=2, text="B := 2;")]


def test_read_records_reads_rotated_files_in_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    audit = JsonlAudit(log, max_bytes=200)
    src = tmp_path / "src/a.adb"
    for n in range(4):
        audit.write(suggestion(f"s{n}", f"2026-11-02T10:0{n}:00+00:00", src, "X := 1;"))
    assert len(list(tmp_path.glob("audit-*.jsonl"))) == 3
    assert [r["id"] for r in read_records(log)] == ["s0", "s1", "s2", "s3"]
