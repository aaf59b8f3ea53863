"""The prompt around the cursor: prefix, suffix, the cursor line and the character budgets."""

from __future__ import annotations

import itertools
import random

import pytest
from lsprotocol.types import Position

from airgap_lsp.settings import Settings
from context.document import Change, ParsedDocument
from context.languages import for_path
from context.prompt import PREFIX_STEP, build_prompt, strip_forced
from context.text import offset_at
from lsp_server.features.inline_completion import WINDOW_STEP_BYTES, cursor_text

ADA = (
    "package body Saturating is\n"
    "   function Add (A, B : Natural) return Natural is\n"
    "   begin\n"
    "      \n"
    "   end Add;\n"
    "end Saturating;\n"
)


def prompt(text: str, line: int, character: int, *, prefix: int = 10_000, suffix: int = 10_000):
    return build_prompt(
        text,
        offset_at(text, line, character),
        path="/ws/src/saturating.adb",
        language="ada",
        max_prefix_chars=prefix,
        max_suffix_chars=suffix,
    )


def test_prefix_and_suffix_split_at_the_cursor() -> None:
    text = "def area(r):\n    return 3.14 * r\n"
    p = prompt(text, 1, 11)  # after "    return "
    assert p.prefix + p.trailing_ws + p.suffix == text
    assert p.prefix == "def area(r):\n    return"
    assert p.trailing_ws == " "
    assert p.suffix == "3.14 * r\n"
    assert p.path == "/ws/src/saturating.adb"
    assert p.language == "ada"
    assert p.snippets == ()


def test_cursor_in_the_middle_of_a_word() -> None:
    text = "signal count : unsigned(7 downto 0);\n"
    p = prompt(text, 0, 9)
    assert p.prefix == "signal co"
    assert p.trailing_ws == ""
    assert p.suffix == "unt : unsigned(7 downto 0);\n"
    assert p.line_before == "signal co"
    assert p.line_after == "unt : unsigned(7 downto 0);"


def test_indentation_of_an_empty_cursor_line_moves_to_trailing_ws() -> None:
    p = prompt(ADA, 3, 6)
    assert p.trailing_ws == "      "
    assert p.prefix.endswith("   begin\n")
    assert p.suffix.startswith("\n   end Add;")
    assert p.line_before == "      "
    assert p.line_after == ""
    assert p.prefix + p.trailing_ws + p.suffix == ADA


def test_tabs_and_spaces_are_trailing_ws_too() -> None:
    text = "if x:\n\t  \n"
    p = prompt(text, 1, 3)
    assert p.trailing_ws == "\t  "
    assert p.prefix == "if x:\n"


def test_whitespace_before_the_cursor_line_is_not_taken() -> None:
    # Trailing whitespace belongs to the cursor line only: the blank line above is kept whole.
    text = "x = 1\n   \ny"
    p = prompt(text, 2, 1)
    assert p.trailing_ws == ""
    assert p.prefix == "x = 1\n   \ny"


def test_line_after_drops_the_carriage_return_of_a_crlf_line() -> None:
    text = "a := 1;\r\nb := 2;\r\n"
    p = prompt(text, 0, 2)
    assert p.line_before == "a "
    assert p.line_after == ":= 1;"
    assert p.prefix == "a"
    assert p.suffix == ":= 1;\r\nb := 2;\r\n"


def test_non_ascii_cursor_line_uses_utf16_columns() -> None:
    text = "x = '\U0001f680' + y\n"
    p = prompt(text, 0, 8)  # "x = '" (5) + rocket (2) + "'" (1)
    assert p.line_before == "x = '\U0001f680'"
    assert p.line_after == " + y"


def test_prefix_budget_keeps_the_end_and_starts_at_a_line() -> None:
    lines = [f"   X{i:02d} := {i};\n" for i in range(20)]
    text = "".join(lines) + "   Y := "
    p = prompt(text, 20, 8, prefix=60)
    assert len(p.prefix) <= 60
    assert text.rstrip(" ").endswith(p.prefix)
    # The kept text starts at a line start: its first line is a whole original line.
    assert p.prefix.split("\n")[0] + "\n" in lines
    assert p.prefix.endswith("   Y :=")
    # What is dropped that would have fit is less than the cut's step and the line it fell in.
    idx = lines.index(p.prefix.split("\n")[0] + "\n")
    assert len(p.prefix) > 60 - 60 * PREFIX_STEP - len(lines[idx - 1])


def test_the_prefix_keeps_its_start_while_lines_are_typed_below() -> None:
    """The engine keeps the key/values of the prompt's start: typing below must not move where
    the file's text starts, as a cut at the budget from the end did with nearly every line. It
    moves in steps, once each time the text before the cursor has grown by about a step."""
    body = "".join(f"      Total := Total + Weight ({i:03d});\n" for i in range(400))
    budget = 3000
    starts, lengths = [], []
    typed = ""
    for i in range(200):  # 200 more lines typed below, one character at a time
        for ch in f"      Count := Count + {i:03d};\n":
            typed += ch
            text = body + typed
            p = prompt(text, text.count("\n"), len(text) - text.rfind("\n") - 1, prefix=budget)
            assert len(p.prefix) <= budget
            assert (body + typed).rstrip(" ").endswith(p.prefix)
            assert p.prefix.startswith("      ")  # a whole line first
            starts.append(len(text.rstrip(" ")) - len(p.prefix))
            lengths.append(len(p.prefix))
    moves = sum(a != b for a, b in itertools.pairwise(starts))
    grown = len(typed)
    # A move each time the text grew by a step (a quarter of the budget), not one a line.
    assert moves <= grown // (budget * PREFIX_STEP) + 1
    assert moves >= grown // (budget * PREFIX_STEP) - 1
    longest = max(len(line) for line in (body + typed).split("\n"))
    assert min(lengths) >= budget * (1 - PREFIX_STEP) - longest  # less a step and a line at most


def test_suffix_budget_keeps_the_start_and_ends_at_a_line() -> None:
    lines = [f"      when {i} => null;\n" for i in range(20)]
    text = "case S is\n" + "".join(lines)
    p = prompt(text, 0, 9, suffix=70)
    assert len(p.suffix) <= 70
    assert p.line_before == "case S is"
    assert ("\n" + "".join(lines)).startswith(p.suffix)
    assert p.suffix.endswith("\n")
    kept = p.suffix.count("\n")
    # Whole lines only, and as many as fit.
    assert len(p.suffix) + len(lines[kept - 1]) > 70


def test_budgets_that_fit_keep_everything() -> None:
    p = prompt(ADA, 3, 6, prefix=len(ADA), suffix=len(ADA))
    assert p.prefix + p.trailing_ws + p.suffix == ADA


def test_zero_suffix_budget_gives_no_suffix() -> None:
    p = prompt(ADA, 3, 6, suffix=0)
    assert p.suffix == ""


def test_zero_prefix_budget_gives_no_prefix() -> None:
    p = prompt(ADA, 3, 6, prefix=0)
    assert p.prefix == ""


def test_single_long_line_is_cut_inside_the_line() -> None:
    text = "x" * 100
    p = prompt(text, 0, 100, prefix=10)
    assert p.prefix == "x" * 10


@pytest.mark.parametrize(
    ("generated", "typed", "want"),
    [
        ("      Result := A + B;", "      ", "Result := A + B;"),  # model re-wrote the indent
        ("Result := A + B;", "      ", "Result := A + B;"),  # model did not
        ("   Result", "      ", "Result"),  # a shorter indent is taken off too
        ("  x", "", "  x"),  # nothing typed: keep as is
        ("    return x\n    y", "    ", "return x\n    y"),  # only the first line's indent
        ("\n      X := 1;", "\n      ", "X := 1;"),  # a healed newline and indentation
        (" Count + 1", " Cou", "nt + 1"),  # a healed partial name
        ("\n  ", "\n      ", ""),  # stopped before spelling what was cut: nothing
    ],
)
def test_strip_forced(generated: str, typed: str, want: str) -> None:
    assert strip_forced(generated, typed) == want


def test_a_cut_after_a_line_break_keeps_that_whole_line() -> None:
    text = "A;\nBCDE;\nF := 1;\nG"
    p = prompt(text, 3, 1, prefix=len(text) - 3)  # a budget of 15: the cut falls after "A;\n"
    assert p.prefix == "BCDE;\nF := 1;\nG"  # the old rule dropped "BCDE;" as well


def test_a_line_longer_than_the_step_still_starts_the_prefix_at_a_line() -> None:
    text = "x := 1;\n" + "y" * 40
    p = prompt(text, 1, 40, prefix=40)
    assert p.prefix == "y" * 40


def test_the_prefix_cut_holds_its_rules_on_any_text() -> None:
    """Whatever the text and budget: at most the budget, the text's end, something where the
    budget is not zero, and from a line start where one lies within the budget."""
    rng = random.Random(1234)
    for _ in range(2_000):
        text = "".join(rng.choice("ab \n") for _ in range(rng.randrange(1, 60)))
        last = text[text.rfind("\n") + 1 :]
        before = text[: len(text) - (len(last) - len(last.rstrip(" \t")))]  # without the blanks
        for limit in range(len(text) + 2):
            kept = build_prompt(
                text,
                len(text),
                path="a.adb",
                language="ada",
                max_prefix_chars=limit,
                max_suffix_chars=0,
            ).prefix
            assert before.endswith(kept)
            assert len(kept) <= limit or kept == before
            if 0 < limit < len(before):
                assert kept
                starts = range(len(before) - limit, len(before))
                if any(before[i - 1] == "\n" for i in starts):
                    assert before[len(before) - len(kept) - 1] == "\n"


def test_an_oversized_documents_prompt_keeps_its_start_while_lines_are_typed() -> None:
    """An oversized document's completion reads a window around the cursor (cursor_text): the
    prompt's start stays where it is while lines are typed, as in a document read whole, moving
    once the window's or the cut's step is crossed; and the context is told where the cursor is
    in the whole document."""
    settings = Settings()
    body = "".join(f"      Total := Total + Weight ({i:05d});\n" for i in range(2000))
    doc = ParsedDocument(body, for_path("big.adb"), max_parsed_bytes=10_000)
    assert doc.oversized
    line, version, grown = 2000, 1, 0
    starts, windows = [], []
    for i in range(200):  # 200 lines typed at the end, one character at a time
        col = 0
        for ch in f"      Count := Count + {i:03d};\n":
            doc.apply([Change(text=ch, start=(line, col), end=(line, col))], version := version + 1)
            grown += len(ch)
            line, col = (line + 1, 0) if ch == "\n" else (line, col + 1)
            text, at, _, place = cursor_text(doc, Position(line=line, character=col), settings)
            assert place == (line, doc.line_count)
            p = build_prompt(
                text,
                at,
                path="/ws/big.adb",
                language="ada",
                max_prefix_chars=settings.max_prefix_chars,
                max_suffix_chars=settings.max_suffix_chars,
            )
            typed = doc.text.rstrip(" ")  # the cursor is at the document's end (all ASCII)
            assert typed.endswith(p.prefix) and p.prefix.startswith("      ")  # a whole line first
            # at most the budget, and not less a step and a line
            assert settings.max_prefix_chars * (1 - PREFIX_STEP) - 40 < len(p.prefix)
            assert len(p.prefix) <= settings.max_prefix_chars
            starts.append(len(typed) - len(p.prefix))
            windows.append(len(doc.text) - at)  # where the window starts in the document
    moves = sum(a != b for a, b in itertools.pairwise(starts))
    window_moves = sum(a != b for a, b in itertools.pairwise(windows))
    assert 1 <= window_moves <= grown // WINDOW_STEP_BYTES + 1
    # The cut's steps, and one more move for each of the window's: the cut's steps are counted
    # from the window's start.
    assert moves <= grown // (settings.max_prefix_chars * PREFIX_STEP) + 2 * window_moves + 1


@pytest.mark.parametrize("width", [40, 5_000])
def test_a_request_carries_the_cursor_line_as_far_as_its_prompt_holds_it(width: int) -> None:
    # What a loop within the line is judged with (inference.stops), which the audit line records
    # and replay checks against the prompt: the whole typed part of an ordinary line, the part
    # the prompt keeps of one longer than maxPrefixChars.
    from types import SimpleNamespace

    from inference.prompt_format import FORMATS
    from lsp_server.features.inline_completion import completion_request

    settings = Settings()
    typed = "   Table : constant Bytes := (" + "16#00#, " * (width // 8)
    text = "package body P is\n" + typed + "\nend P;\n"
    p = prompt(text, 1, len(typed), prefix=settings.max_prefix_chars)
    # The model's tokenizer stands aside here: its last token is the last word.
    engine = SimpleNamespace(
        info=SimpleNamespace(prompt_format=next(iter(FORMATS))),
        last_token=lambda text: text.rsplit(" ", 1)[-1],
    )
    request = completion_request(p, engine, settings)  # type: ignore[arg-type]
    assert request.forced_prefix == "16#00#, "  # the last word and the blank typed after it
    if width < settings.max_prefix_chars:
        assert request.line_before == typed
    else:
        assert typed.endswith(request.line_before)
        assert len(request.line_before) <= settings.max_prefix_chars
        assert len(request.line_before) <= len(request.prompt) + len(request.forced_prefix)
