"""The suggestion ledger: what is pending in each document, and the audit line of each fate."""

from __future__ import annotations

from pathlib import Path

from airgap_lsp.policy import Policy
from airgap_lsp.settings import Settings
from audit.files import read_records
from lsp_server.ledger import OFFERED_EDITS, Ledger


def ledger(log: Path, errors: list[str]) -> Ledger:
    settings = Settings(audit_path=str(log))
    return Ledger(
        Policy(), lambda: settings, lambda: {"name": "test", "version": "1"}, errors.append
    )


def events(log: Path) -> list[tuple[str, str, str, str]]:
    return [(r["kind"], r["id"], r["file"], r["reason"]) for r in read_records(log)]


def test_a_replaced_suggestion_is_not_accepted_and_an_accepted_one_is_pending_no_more(
    tmp_path: Path,
) -> None:
    log, errors = tmp_path / "audit.jsonl", []
    book = ledger(log, errors)
    book.replace_shown("file:///a.adb", "s1")
    book.replace_shown("file:///a.adb", "s2")  # the next keystroke's suggestion
    book.replace_shown("file:///b.adb", "s3")
    assert book.accept("s2") == "file:///a.adb"
    assert book.accept("s2") is None  # accepted already
    assert book.accept("s1") is None  # replaced already
    book.end_session()
    assert events(log) == [
        ("not_accepted", "s1", "file:///a.adb", "replaced"),
        ("not_accepted", "s3", "file:///b.adb", "session ended"),
    ]
    assert book.shown == {} and errors == []


def test_offered_edits_are_bounded_and_the_newest_stay_pending(tmp_path: Path) -> None:
    book = ledger(tmp_path / "audit.jsonl", [])
    for n in range(OFFERED_EDITS + 1):
        book.offer(f"edit-{n}", f"file:///{n}.adb")
    assert len(book.offered) == OFFERED_EDITS
    assert book.accept("edit-0") is None  # the oldest went
    assert book.accept(f"edit-{OFFERED_EDITS}") == f"file:///{OFFERED_EDITS}.adb"
    assert book.accept("edit-1") == "file:///1.adb"


def test_a_not_accepted_line_that_cannot_be_written_is_shown_to_the_user(tmp_path: Path) -> None:
    errors: list[str] = []
    book = ledger(tmp_path, errors)  # a folder, not a log: the write is refused
    book.replace_shown("file:///a.adb", "s1")
    book.replace_shown("file:///a.adb", None, "document closed")
    assert book.shown == {}
    assert len(errors) == 1 and str(tmp_path) in errors[0]
