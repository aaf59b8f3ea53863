"""LSP positions (UTF-16 code units) against Python string indexes (code points)."""

from __future__ import annotations

import pytest

from context.text import offset_at, printable, utf16_to_index

ALPHA = "\U0001d6fc"  # 𝛼, outside the BMP: two UTF-16 units, one Python character
ROCKET = "\U0001f680"  # an emoji, also a surrogate pair in UTF-16


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def test_ascii_column_is_the_index() -> None:
    assert utf16_to_index("X := 1;", 0) == 0
    assert utf16_to_index("X := 1;", 3) == 3


def test_bmp_accent_counts_one_unit() -> None:
    line = "café := 1;"
    assert utf16_len("café") == 4
    assert line[utf16_to_index(line, 4) :] == " := 1;"


def test_astral_character_counts_two_units() -> None:
    line = f"{ALPHA} = x"
    # The editor puts the cursor after 𝛼 at column 2; Python has it at index 1.
    assert utf16_len(ALPHA) == 2
    assert utf16_to_index(line, 2) == 1
    assert line[utf16_to_index(line, 2) :] == " = x"


def test_emoji_then_text() -> None:
    line = f"-- {ROCKET}{ROCKET} launch"
    col = utf16_len(f"-- {ROCKET}{ROCKET}")
    assert col == 7
    assert line[utf16_to_index(line, col) :] == " launch"


@pytest.mark.parametrize("glyph", [ALPHA, ROCKET])
def test_column_inside_a_surrogate_pair_does_not_split_the_character(glyph: str) -> None:
    line = f"a{glyph}b"
    # Column 2 falls between the high and the low surrogate of the glyph.
    i = utf16_to_index(line, 2)
    assert i in (1, 2)
    before, after = line[:i], line[i:]
    # Both halves still encode: no lone surrogate, the character is whole on one side.
    assert (before + after).encode("utf-8") == line.encode("utf-8")
    assert glyph in before or glyph in after


def test_column_past_line_end_clamps_to_the_end() -> None:
    assert utf16_to_index("abc", 99) == 3
    assert utf16_to_index(f"{ALPHA}", 99) == 1
    assert utf16_to_index("", 5) == 0


TEXT = f"procedure Ré is\n   {ALPHA} : Integer;\nbegin\n   null;\nend Ré;\n"


def test_offset_on_a_later_line_with_non_ascii() -> None:
    # Line 1, after "   𝛼" (3 + 2 units): the cursor is before " : Integer;".
    at = offset_at(TEXT, 1, 5)
    assert TEXT[at:].startswith(" : Integer;")
    # Line 4, after "end Ré": the cursor is before ";".
    at = offset_at(TEXT, 4, 6)
    assert TEXT[at:] == ";\n"


def test_offset_past_the_line_end_clamps_to_that_line() -> None:
    at = offset_at(TEXT, 2, 100)
    assert TEXT[:at].endswith("\nbegin")
    assert TEXT[at] == "\n"


def test_offset_past_the_last_line_clamps_to_the_end_of_text() -> None:
    assert offset_at(TEXT, 50, 0) == len(TEXT)
    assert offset_at("no newline", 3, 2) == len("no newline")


def test_offset_on_the_empty_last_line_after_a_final_newline() -> None:
    assert offset_at("a\nb\n", 2, 0) == 4
    assert offset_at("a\nb\n", 2, 7) == 4


def test_crlf_line_ends_keep_the_cursor_before_the_carriage_return() -> None:
    text = "x = 1\r\ny = 2\r\n"
    at = offset_at(text, 1, 0)
    assert text[at:] == "y = 2\r\n"
    # Past the end of a CRLF line: before "\r", never between "\r" and "\n".
    at = offset_at(text, 0, 40)
    assert text[:at] == "x = 1"
    assert offset_at(text, 1, 5) == text.index("y = 2") + 5


def test_crlf_with_astral_character() -> None:
    text = f"s = '{ROCKET}'\r\nt = 0\r\n"
    at = offset_at(text, 0, utf16_len(f"s = '{ROCKET}"))
    assert text[at:].startswith("'\r\n")


@pytest.mark.parametrize(("line", "character"), [(-1, 0), (0, -1), (-3, -3)])
def test_negative_positions_raise(line: int, character: int) -> None:
    with pytest.raises(ValueError):
        offset_at("abc\n", line, character)


def test_printable_text_keeps_its_length_and_encodes() -> None:
    text = "a\ud800b\U0001f600c\udfff"
    clean = printable(text)
    assert clean == "a\ufffdb\U0001f600c\ufffd" and len(clean) == len(text)
    assert printable("plain") == "plain"
