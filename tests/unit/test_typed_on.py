"""What is left of a shown suggestion once the user typed its start (served with no generation)."""

from __future__ import annotations

from airgap_lsp.settings import Settings
from lsp_server.features.inline_completion import Shown
from tests.unit.test_audit import record

BEFORE = "procedure Reset is\nbegin\n   "
AFTER = "\nend Reset;\n"


def shown(text: str) -> Shown:
    return Shown(before=BEFORE, after=AFTER, text=text, record=record(1), settings=Settings())


def test_the_rest_after_what_was_typed() -> None:
    assert shown("Count := 0;").remainder(BEFORE + "Cou", AFTER) == ("nt := 0;", "Cou")


def test_other_text_an_edit_after_the_cursor_or_nothing_left_asks_the_model_again() -> None:
    s = shown("Count := 0;")
    assert s.remainder(BEFORE + "Cnt", AFTER) is None
    assert s.remainder(BEFORE + "Cou", AFTER + "--\n") is None
    assert s.remainder(BEFORE, AFTER) is None  # nothing typed: not a rest
    assert s.remainder(BEFORE + "Count := 0;", AFTER) is None  # all of it typed


def test_enter_typed_as_crlf_in_a_multi_line_suggestion() -> None:
    s = shown("Count := 0;\n   Total := 0;")
    crlf = s.remainder(BEFORE + "Count := 0;\r\n   Tot", AFTER)
    assert crlf == ("al := 0;", "Count := 0;\r\n   Tot")
