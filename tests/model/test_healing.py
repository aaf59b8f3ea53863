"""Token healing on the embedded default model's tokenizer and weights: the prompt ends on a
whole token, the generation spells what was cut, and a line start gets a line, not a blank."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from airgap_lsp.errors import AirgapError
from context.prompt import build_prompt, suggestion_text
from inference.engine import (
    GenerationRequest,
    LocalEngine,
    first_refused,
    joined,
    spelling,
)
from inference.healing import heal, refused_start
from inference.stops import StopRule
from tests.conftest import audited_model


@pytest.fixture(scope="module")
def engine(default_model) -> LocalEngine:  # type: ignore[no-untyped-def]
    return LocalEngine(default_model, device="cpu")


def healed(engine: LocalEngine, text: str) -> tuple[str, str]:
    p = build_prompt(
        text, len(text), path="a.adb", language="ada", max_prefix_chars=3000, max_suffix_chars=0
    )
    return heal(p.prefix, p.trailing_ws, engine.last_token)


def line_request(engine: LocalEngine, text: str, refuse: str, **more: Any) -> GenerationRequest:
    """One line after `text`, healed, as the server asks for it."""
    prompt, forced = healed(engine, text)
    return GenerationRequest(
        prompt=prompt,
        max_new_tokens=16,
        stop=StopRule(multiline=False),
        forced_prefix=forced,
        refuse_start=refuse,
        **more,
    )


def one_line(engine: LocalEngine, text: str, refuse: str, **more: Any) -> tuple[str, str]:
    """(the generation, what the editor shows) for one line after `text`, healed."""
    request = line_request(engine, text, refuse, **more)
    generated = engine.generate(request).text
    return generated, suggestion_text(generated, request.forced_prefix)


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
    digits = "0123456789"
    blanks = refused_start("   ", "")  # the indentation typed: a line of code, not a blank
    assert {" ", "\t", "\xa0", "\r", "\n", *digits} <= set(blanks)
    assert all(c.isspace() or c in digits for c in blanks)
    assert refused_start("", "") == "\r\n" + digits  # column 0: the model may indent the line
    # A line of a table of numbers may follow another.
    assert not set(digits) & set(refused_start("      ", "", "      16#00#, 16#01#,"))
    assert set(digits) <= set(refused_start("      ", "", "      X := 1;"))
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
    after_blank = set(joined(texts, " "))
    # What may not follow a healed indentation: words the tokenizer writes with their blank...
    assert {texts.index("X"), texts.index("begin"), texts.index("return")} <= after_blank
    # ...but not a digit, which it writes apart (`" 1"` is no token): below a line that starts
    # with one (a table of numbers: refused_start), `16#FF#,` may start a line.
    assert " 1" not in texts and texts.index("1") not in after_blank

    text = "procedure Sub (A, B : Integer; R : out Integer) is\nbegin\n      "
    generated, shown = one_line(engine, text, refused_start("      ", ""))
    assert generated.startswith("\n      ") and shown and not shown[0].isspace()


def test_spelling_rules_on_a_small_vocabulary() -> None:
    texts = ["", "\n", "\n ", "\n  ", " ", " X", "  ", "\n\n", "X", " \n", "1"]
    # All of it or its start, and all of it and more; never a special token ("").
    assert spelling(texts, "\n  ") == [1, 2, 3]
    # With a line of code due, the more may not be blank.
    assert spelling(texts, " ", " \t\r\n") == [4, 5]
    assert spelling(texts, "\n ", " \t\r\n") == [1, 2]
    # "X" is written with the blank before it (" X" is a token), and so are "\n" and " "
    # (" \n", "  "); "1" is not.
    assert joined(texts, " ") == [1, 4, 8]


def test_a_refused_start_is_not_written_again() -> None:
    texts = ["", " ", " X", " Y", "X", "Xa", "Y", "X :=", "\n"]
    # Past what is pending of the forced text, a token may not start a refused suggestion.
    assert first_refused(texts, " ", ("X := 1;",)) == [2]
    assert first_refused(texts, "", ("X := 1;",)) == [4, 7]
    assert first_refused(texts, "", ("Xa_b",)) == [4, 5]
    assert first_refused(texts, "", ("",)) == []


def test_asked_again_the_model_starts_otherwise(engine: LocalEngine) -> None:
    text = "procedure P (X : in out Integer) is\nbegin\n   X := X + 1;\n   "

    def ask(refused: tuple[str, ...]) -> str:
        return one_line(engine, text, refused_start("   ", ""), refuse_first=refused)[1]

    first = ask(())
    second = ask((first,))
    third = ask((first, second))
    assert first and second and third
    assert len({first.split()[0], second.split()[0], third.split()[0]}) == 3, (
        first,
        second,
        third,
    )


def test_audit_replay_reproduces_a_suggestion_asked_for_again(default_model) -> None:  # type: ignore[no-untyped-def]
    from airgap_lsp.paths import model_store_root
    from audit.replay import replay
    from inference.store import ModelStore

    # float32 and one thread: one arithmetic order then and now (bfloat16 may round apart).
    engine = LocalEngine(default_model, device="cpu", dtype="float32")
    text = "procedure P (X : in out Integer) is\nbegin\n   X := X + 1;\n   "
    refuse = refused_start("   ", "")
    first = line_request(engine, text, refuse, threads=1)
    prompt, forced = first.prompt, first.forced_prefix
    asked = engine.generate(first)
    withheld = suggestion_text(asked.text, forced)
    again = replace(first, refuse_first=(withheld,))
    made = engine.generate(again)
    shown = suggestion_text(made.text, forced)
    assert shown and shown != withheld
    record = {
        "prompt": prompt,
        "text": shown,
        "device": "cpu",
        "dtype": "float32",
        "model": audited_model(default_model),
        "decoding": {
            "max_new_tokens": 16,
            "multiline": False,
            "base_indent": 0,
            "forced_prefix": forced,
            "refuse_start": refuse,
            "refuse_first": [withheld],
            "threads": 1,
            "steps": made.steps,  # how the steps ran, as the server's lines say
            "prompt_lookup": again.lookahead,
            "drafts_from": list(made.drafts_from),
        },
    }

    assert replay(record, ModelStore(model_store_root())).text == shown
    # A line altered to draft from a token the model does not have is refused, naming why.
    altered = record | {"decoding": record["decoding"] | {"drafts_from": [engine.vocab_size]}}
    with pytest.raises(AirgapError, match="past the model's vocabulary"):
        replay(altered, ModelStore(model_store_root()))
    # Without the refused start, the replay would write the first suggestion: not the same.
    del record["decoding"]["refuse_first"]
    record["decoding"]["drafts_from"] = list(asked.drafts_from)
    assert replay(record, ModelStore(model_store_root())).text == withheld
