"""Token healing on the embedded default model's tokenizer and weights: the prompt ends on a
whole token, the generation spells what was cut, and a line start gets a line, not a blank."""

from __future__ import annotations

import pytest

from context.prompt import build_prompt, suggestion_text
from inference.engine import GenerationRequest, LocalEngine, spelling
from inference.healing import heal, refused_start
from inference.stops import StopRule


@pytest.fixture(scope="module")
def engine(default_model) -> LocalEngine:  # type: ignore[no-untyped-def]
    return LocalEngine(default_model, device="cpu")


def healed(engine: LocalEngine, text: str) -> tuple[str, str]:
    p = build_prompt(
        text, len(text), path="a.adb", language="ada", max_prefix_chars=3000, max_suffix_chars=0
    )
    return heal(p.prefix, p.trailing_ws, engine.last_token)


def one_line(engine: LocalEngine, text: str, refuse: str) -> tuple[str, str]:
    """(the generation, what the editor shows) for one line after `text`, healed."""
    prompt, forced = healed(engine, text)
    request = GenerationRequest(
        prompt=prompt,
        max_new_tokens=16,
        stop=StopRule(multiline=False),
        forced_prefix=forced,
        refuse_start=refuse,
    )
    generated = engine.generate(request).text
    return generated, suggestion_text(generated, forced)


@pytest.mark.parametrize(
    ("text", "prompt_end", "forced"),
    [
        # The tokenizer merges a newline with the indentation after it: a prompt cut after the
        # newline would end on a lone "\n", which code almost never holds.
        ("   begin\n      ", "   begin", "\n      "),
        ("\tbegin\n\t\t", "\tbegin", "\n\t\t"),  # tabs
        ("begin\r\n   ", "begin", "\r\n   "),  # CRLF
        ("   Total_Cou", "   Total_C", "ou"),  # inside a name: its last piece
        ("   X :=", "   X", " :="),  # after an operator
        ("   X := ", "   X", " := "),  # and the blank typed after it
        ("", "", ""),  # the start of the file: nothing to heal
        ("X", "X", ""),  # one token: nothing would be left to go on
    ],
)
def test_the_prompt_backs_up_over_its_last_token(
    engine: LocalEngine, text: str, prompt_end: str, forced: str
) -> None:
    assert healed(engine, text) == (prompt_end, forced)


def test_a_special_token_at_the_end_is_not_backed_up_over(engine: LocalEngine) -> None:
    # The prefix-only format's file separator is a special token of this tokenizer.
    assert engine.last_token("x = 1\n<file_sep>") == ""
    assert heal("x = 1\n<file_sep>", "  ", engine.last_token) == ("x = 1\n<file_sep>", "  ")


def test_a_healed_line_start_is_spelled_and_the_suggestion_is_the_line(
    engine: LocalEngine,
) -> None:
    text = "procedure Sub (A, B : Integer; R : out Integer) is\nbegin\n   "
    generated, shown = one_line(engine, text, refused_start("   ", ""))
    assert generated.startswith("\n   ")
    assert shown and not shown[0].isspace() and "\n" not in shown


def test_at_a_line_start_the_suggestion_does_not_start_blank(engine: LocalEngine) -> None:
    text = "procedure P is\nbegin\n   X := 1;\n\n   "
    # Left alone, this model indents one space too far here: the suggestion starts blank.
    assert one_line(engine, text, "")[1][0] == " "
    refused = one_line(engine, text, refused_start("   ", ""))[1]
    assert refused and not refused[0].isspace()


def test_only_an_empty_line_refuses_a_blank_start() -> None:
    assert refused_start("   ", "") == " \t\r\n"  # the indentation typed: a line of code
    assert refused_start("", "") == "\r\n"  # column 0: the model may indent the line itself
    assert refused_start("   X := 1;", "") == ""  # after code: the line may be complete
    assert refused_start("   X := ", "Y;") == ""
    assert refused_start("   ", "end if;") == ""


def test_at_the_end_of_a_finished_line_nothing_may_be_the_suggestion(
    engine: LocalEngine,
) -> None:
    text = "procedure P is\nbegin\n   X := 1;"
    assert one_line(engine, text, refused_start("   X := 1;", ""))[1] == ""


def test_healing_never_spells_with_a_special_token(engine: LocalEngine) -> None:
    # `vector<` heals back over `<`: `<file_sep>` or `<|endoftext|>` would "spell" it and end the
    # suggestion before it began.
    special = set(engine._tokenizer.added_tokens_decoder)  # noqa: SLF001
    allowed = set(spelling(engine.token_texts(), "<"))
    assert allowed and not allowed & special


def test_a_line_start_spells_its_last_blank_with_the_word_after_it(engine: LocalEngine) -> None:
    # The tokenizer joins the last blank of an indentation to the word after it: `"\n      X"`
    # is `"\n     "`, `" X"`. Spelled with a token that ends where the indentation ends, the line
    # would have to go on with a word without its blank, which the model has hardly seen.
    assert engine.ends_inside("\n      ") and engine.ends_inside("\r\n   ")
    assert not engine.ends_inside("\n\t\t")  # a tab stays apart from the word after it
    assert not engine.ends_inside("\n") and not engine.ends_inside(" :=")
    texts = engine.token_texts()
    refuse = refused_start("      ", "")
    exact = {i for i, t in enumerate(texts) if t == " "}
    allowed = set(spelling(texts, " ", refuse, ends_inside=True))
    assert allowed and not allowed & exact  # " X", " begin" ... but not a lone " "
    assert all(texts[i].startswith(" ") and texts[i][1] not in refuse for i in allowed)
    assert exact <= set(spelling(texts, " ", refuse))  # without the rule it may stop there

    text = "procedure Sub (A, B : Integer; R : out Integer) is\nbegin\n      "
    generated, shown = one_line(engine, text, refuse)
    assert generated.startswith("\n      ") and shown and not shown[0].isspace()


def test_spelling_rules_on_a_small_vocabulary() -> None:
    texts = ["", "\n", "\n ", "\n  ", " ", " X", "  ", "\n\n", "X", " \n"]
    # All of it or its start, and all of it and more; never a special token ("").
    assert spelling(texts, "\n  ") == [1, 2, 3]
    # With a line of code due, the more may not be blank; the token that ends where the text
    # ends is not taken where the text's end joins the word after it.
    assert spelling(texts, " ", " \t\r\n") == [4, 5]
    assert spelling(texts, " ", " \t\r\n", ends_inside=True) == [5]
    assert spelling(texts, "\n ", " \t\r\n", ends_inside=True) == [1]  # a start: taken
