"""The audit log: one JSON line per suggestion, hash-chained, owner-only, safe to share."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from airgap_lsp.errors import AirgapError
from audit.record import AuditError, AuditRecord
from audit.replay import decoded_as, rule_changed
from audit.writer import JsonlAudit
from context.languages import for_document

GENESIS = "0" * 64
FIELDS = {f.name for f in dataclasses.fields(AuditRecord)}


def record(n: int, *, prompt: str = "", who: str = "test") -> AuditRecord:
    return AuditRecord(
        id=f"{who}-{n}",
        time=f"2025-01-01T00:00:{n % 60:02d}Z",
        kind="inline_completion",
        user={"name": "alice", "uid": 1000},
        host="ws-17",
        client={"name": "Neovim", "version": "0.11"},
        file="/ws/src/saturating.adb",
        position={"line": 3, "character": 6},
        language="ada",
        model={
            "name": "tiny",
            "version": "1",
            "manifest_sha256": "ab" * 32,
            "family": "llama",
            "prompt_format": "prefix-only",
        },
        device="cpu",
        dtype="float32",
        decoding={"greedy": True, "max_new_tokens": 48},
        prompt=prompt or f"function Ré{n} return Natural is -- 𝛼 🚀\n   ",
        text=f"return {n};",
        context_sources=[{"path": "/ws/src/saturating.ads", "lines": [1, 4], "sha256": "c" * 64}],
        timings={"total_ms": 12.5},
    )


def raw_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def assert_chain(lines: list[bytes]) -> None:
    prev = GENESIS
    for i, line in enumerate(lines):
        doc = json.loads(line)
        assert doc["prev_sha256"] == prev, f"chain broken at line {i + 1}"
        prev = hashlib.sha256(line).hexdigest()


def test_three_records_are_three_chained_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    sink = JsonlAudit(path)
    recs = [record(i) for i in range(3)]
    for r in recs:
        sink.write(r)
    lines = raw_lines(path)
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    for doc, rec in zip(docs, recs, strict=True):
        assert set(doc) == FIELDS | {"prev_sha256"}
        assert {k: doc[k] for k in FIELDS} == dataclasses.asdict(rec)
    assert docs[0]["prev_sha256"] == GENESIS
    assert docs[1]["prev_sha256"] == hashlib.sha256(lines[0]).hexdigest()
    assert docs[2]["prev_sha256"] == hashlib.sha256(lines[1]).hexdigest()


def test_non_ascii_text_is_kept_and_hashed_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAudit(path).write(record(0, prompt="Zähler := 𝛼 + 1; -- 🚀"))
    JsonlAudit(path).write(record(1))
    lines = raw_lines(path)
    assert json.loads(lines[0])["prompt"] == "Zähler := 𝛼 + 1; -- 🚀"
    assert_chain(lines)


def test_a_line_longer_than_the_read_window_still_chains(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlAudit(path)
    sink.write(record(0))
    sink.write(record(1, prompt="x := 1;\n" * 20_000))  # ~160 kB on one line
    sink.write(record(2))
    lines = raw_lines(path)
    assert len(lines[1]) > 150_000
    assert_chain(lines)


def test_a_new_sink_on_an_existing_log_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAudit(path).write(record(0))
    JsonlAudit(path).write(record(1))
    assert_chain(raw_lines(path))


def test_an_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    # What `audit verify` relies on: a changed line no longer matches the next prev_sha256.
    path = tmp_path / "audit.jsonl"
    sink = JsonlAudit(path)
    for i in range(3):
        sink.write(record(i))
    lines = raw_lines(path)
    lines[1] = lines[1].replace(b"return 1;", b"return 9;")
    with pytest.raises(AssertionError, match="line 3"):
        assert_chain(lines)


def test_the_log_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    JsonlAudit(path).write(record(0))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_parent_that_is_a_file_raises_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = blocker / "audit.jsonl"
    with pytest.raises(AuditError) as err:
        JsonlAudit(path).write(record(0))
    assert str(path) in str(err.value)
    assert blocker.read_text() == "x"


def _append_many(path: str, who: str, count: int, barrier: multiprocessing.Barrier) -> None:
    sink = JsonlAudit(Path(path))
    barrier.wait(timeout=60)
    for i in range(count):
        sink.write(record(i, who=who))


def test_two_processes_appending_keep_the_chain_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_append_many, args=(str(path), who, 20, barrier)) for who in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = raw_lines(path)
    assert len(lines) == 40
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted([f"a-{i}" for i in range(20)] + [f"b-{i}" for i in range(20)])
    # Each writer's own lines stay in its order.
    assert [i for i in ids if i.startswith("a-")] == [f"a-{i}" for i in range(20)]
    assert_chain(lines)


def test_a_lone_surrogate_in_a_prompt_is_written_as_a_json_escape(tmp_path: Path) -> None:
    from audit.verify import verify

    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record(1, prompt="x\ud800y é"))
    JsonlAudit(log).write(record(2))
    raw = log.read_bytes()
    raw.decode("utf-8")  # still UTF-8 throughout
    assert json.loads(raw.split(b"\n")[0])["prompt"] == "x\ud800y é"
    assert verify(log).ok


def test_an_unfinished_line_that_cannot_be_cut_withholds_the_line_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    log = tmp_path / "audit.jsonl"
    JsonlAudit(log).write(record(1))
    with log.open("ab") as fh:
        fh.write(b'{"id": "half')  # a writer stopped mid-line
    before = log.read_bytes()

    def append_only(_fd: int, _length: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "ftruncate", append_only)
    with pytest.raises(AuditError, match="refuses to be cut.*rotate the log aside"):
        JsonlAudit(log).write(record(2))
    assert log.read_bytes() == before


def test_replay_says_when_the_first_statement_rule_changed_since_the_line() -> None:
    python = for_document("", "python")
    assert python is not None
    now = {"first_statement": True, "statement_rule_sha256": python.statement_rule_sha256()}
    assert rule_changed(now, {"language": "python"}) == ""
    before = {"first_statement": True, "statement_rule_sha256": "0" * 64}
    assert "not those this line was made with" in rule_changed(before, {"language": "python"})
    # A line that did not end with its first statement, or did not say by which rule: nothing.
    assert rule_changed({"first_statement": False}, {"language": "python"}) == ""
    assert rule_changed({"first_statement": True}, {"language": "python"}) == ""


@pytest.mark.parametrize(
    ("steps", "decoded"),
    [
        ("dynamic cache", (False, "", False)),
        ("dynamic cache, decoding steps' attention packed by key/value head", (False, "", True)),
        (
            "dynamic cache, one-token attention packed by key/value head",
            (False, "", "one-token attention packed by key/value head"),
        ),
        ("static cache", (True, "", False)),
        ("static cache, compiled (inductor)", (True, "inductor", False)),
    ],
)
def test_replay_decodes_as_each_label_the_engine_writes_says(
    steps: str, decoded: tuple[bool, str, bool | str]
) -> None:
    from inference.engine import PACKED_ATTENTION, PACKED_ONE_TOKEN

    # The labels as the engine writes them (a renamed label would leave old lines unreadable).
    assert PACKED_ATTENTION in steps or PACKED_ONE_TOKEN in steps or "packed" not in steps
    assert decoded_as(steps) == decoded


@pytest.mark.parametrize(
    "steps",
    [
        "dynamic cache, attention packed some newer way",
        "dynamic cache, decoding steps' attention packed by key/value head, and more",
        "static cache, compiled ()",
        "dynamic cache, ",
        "static cache, ",
        "",
        "static cache, packed",
        "paged cache",
    ],
)
def test_replay_refuses_steps_this_version_does_not_know(steps: str) -> None:
    # Replayed another way than the line was made, a different text would prove nothing.
    with pytest.raises(AirgapError, match="does not know, so it cannot decode the same way"):
        decoded_as(steps)
