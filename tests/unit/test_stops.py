"""Where a completion ends: end of line, end of block, blank lines, format stop texts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from context.languages import for_path
from context.prompt import build_prompt, wants_block
from inference.stops import (
    HEAD_CHARS,
    PIECE_REPEATS,
    StopRule,
    block_indent,
    cut,
    cut_forced,
)

LINE = StopRule(multiline=False)


# -- choosing the rule from the cursor line ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "block"),
    [
        # Below a line that opens a block, on an empty line: a block.
        ("p.adb", "procedure P is\nbegin\n   <|>\n   Y := 2;\nend P;\n", True),
        ("p.adb", "   if Ready then  -- go\n      <|>\n      Y := 2;\n", True),
        ("p.adb", "   for I in A'Range loop\n      <|>\n      Y := 2;\n", True),
        (
            "e.vhd",
            "architecture rtl of e is\nbegin\n  g: for i in 0 to 3 generate\n    <|>\n"
            "    x <= y;\n",
            True,
        ),
        ("m.py", "def f(x):\n    <|>\n    return x\n", True),
        ("m.c", "int f(int x) {\n    <|>\n    return x;\n}\n", True),
        # Between two statements of a block: one line.
        ("p.adb", "begin\n   X := 1;\n   <|>\n   Y := 2;\nend P;\n", False),
        ("m.py", "def f(x):\n    y = x\n    <|>\n    return y\n", False),
        # The rest of the block is missing: the next line is less indented, or there is none.
        ("p.adb", "begin\n   X := 1;\n   <|>\nend P;\n", True),
        ("m.py", "def f(x):\n    y = x\n    <|>", True),
        # Text before or after the cursor: the rest of the line.
        ("p.adb", "begin\n   X := <|>\n", False),
        ("p.adb", "begin\n   <|>end loop;\n", False),
    ],
)
def test_a_block_where_one_opens_or_its_rest_is_missing(path: str, text: str, block: bool) -> None:
    at = text.index("<|>")
    text = text.replace("<|>", "")
    lang = for_path(path)
    assert lang is not None
    p = build_prompt(
        text, at, path=path, language=lang.name, max_prefix_chars=999, max_suffix_chars=999
    )
    assert wants_block(p, lang.block_open, lang.line_comment) is block


def test_the_rules_judge_what_follows_the_forced_start() -> None:
    # A forced newline and indentation (healed off the prompt) does not end a one-line
    # suggestion before it began; the line after it does.
    assert cut_forced("\n   X := 1;\n   Y", "\n   ", LINE) == ("\n   X := 1;", "end_of_line")
    assert cut_forced("\n  ", "\n   ", LINE) == ("\n  ", None)  # still spelling it
    assert cut_forced(" := A + B", " := ", LINE) == (" := A + B", None)


def test_a_line_written_three_times_in_a_row_is_cut_to_one() -> None:
    rule = StopRule(multiline=True, base_indent=3)
    text = "X := 1;\n   Y := 2;\n   Y := 2;\n   Y := 2;\n   Z"
    assert cut(text, rule) == ("X := 1;\n   Y := 2;", "repetition")
    twice = "X := 1;\n   Y := 2;\n   Y := 2;\n   Z"
    assert cut(twice, rule) == (twice, None)  # twice may be code


def test_a_run_of_blanks_is_cut() -> None:
    assert cut("null;" + " " * 60, LINE) == ("null;", "repetition")
    rule = StopRule(multiline=True, base_indent=0)
    assert cut("null;\n" + " " * 200, rule) == ("null;", "repetition")
    deep = "null;\n" + " " * 60  # a deep indentation, still being written: go on
    assert cut(deep, rule) == (deep, None)
    # No-break spaces are blanks too (the model wrote 48 tokens of them at a line start).
    assert cut("null;" + "\xa0" * 60, LINE) == ("null;", "repetition")
    assert cut("\n      " + "\xa0" * 200, rule)[1] == "repetition"


@pytest.mark.parametrize(
    ("before", "indent"),
    [
        ("      ", 6),  # empty line: the cursor column is the block's indent
        ("", 0),
        ("   if Count > Max then", 3),  # a code line: its own indentation
        ("        return x", 8),
        ("\t", 1),
    ],
)
def test_block_indent(before: str, indent: int) -> None:
    assert block_indent(before) == indent


# -- single line -------------------------------------------------------------------------------


def test_single_line_stops_at_the_first_newline() -> None:
    assert cut("A + B;\n   end Add;", LINE) == ("A + B;", "end_of_line")


def test_single_line_without_newline_goes_on() -> None:
    assert cut("A + B", LINE) == ("A + B", None)


def test_single_line_newline_first_gives_empty_text() -> None:
    assert cut("\n      return x", LINE) == ("", "end_of_line")


# -- blocks ------------------------------------------------------------------------------------


def test_ada_body_stops_before_the_end_of_the_procedure() -> None:
    # Cursor on an empty line at column 6 inside a procedure body.
    rule = StopRule(multiline=True, base_indent=6)
    text = (
        "      if A > Natural'Last - B then\n"
        "         return Natural'Last;\n"
        "      end if;\n"
        "      return A + B;\n"
        "   end Add;\n"
        "   function Sub"
    )
    kept, why = cut(text, rule)
    assert why == "end_of_block"
    assert kept == (
        "      if A > Natural'Last - B then\n"
        "         return Natural'Last;\n"
        "      end if;\n"
        "      return A + B;"
    )


def test_python_body_stops_at_the_next_top_level_def() -> None:
    rule = StopRule(multiline=True, base_indent=4)
    text = "total = 0\n    for x in xs:\n        total += x\n    return total\n\ndef mean(xs):\n"
    kept, why = cut(text, rule)
    assert why == "end_of_block"
    assert kept == "total = 0\n    for x in xs:\n        total += x\n    return total"


def test_vhdl_process_stops_at_end_architecture() -> None:
    rule = StopRule(multiline=True, base_indent=4)
    text = "    if rising_edge(clk) then\n      count <= count + 1;\n    end if;\n  end process;\n"
    kept, why = cut(text, rule)
    assert why == "end_of_block"
    assert kept.endswith("    end if;")
    assert "end process" not in kept


def test_first_line_is_never_judged_by_its_indent() -> None:
    # The first line continues the cursor line, whose indentation is already in the document.
    rule = StopRule(multiline=True, base_indent=8)
    assert cut("return x", rule) == ("return x", None)
    assert cut("return x\n        y = 1", rule) == ("return x\n        y = 1", None)


def test_a_deeper_or_equal_line_does_not_stop() -> None:
    rule = StopRule(multiline=True, base_indent=4)
    text = "if ok:\n        go()\n    else_branch()\n"
    assert cut(text, rule) == (text, None)


def test_a_line_still_being_written_stops_once_its_indent_is_known() -> None:
    rule = StopRule(multiline=True, base_indent=6)
    assert cut("null;\n   ", rule) == ("null;\n   ", None)  # only spaces so far: go on
    assert cut("null;\n   e", rule) == ("null;", "end_of_block")


def test_two_blank_lines_end_a_block() -> None:
    rule = StopRule(multiline=True, base_indent=0)
    text = "import os\nimport sys\n\n\nprint(1)"
    kept, why = cut(text, rule)
    assert (kept, why) == ("import os\nimport sys", "end_of_block")


def test_blank_lines_of_spaces_count_as_blank() -> None:
    rule = StopRule(multiline=True, base_indent=4)
    kept, why = cut("x = 1\n    \n  \t\n    y = 2", rule)
    assert (kept, why) == ("x = 1", "end_of_block")


def test_one_blank_line_inside_a_block_does_not_stop() -> None:
    rule = StopRule(multiline=True, base_indent=4)
    text = "a = 1\n\n    b = 2\n"
    assert cut(text, rule) == (text, None)


def test_a_second_blank_line_not_yet_finished_does_not_stop() -> None:
    # "x\n\n" : the last line may still receive text.
    rule = StopRule(multiline=True, base_indent=0)
    assert cut("x\n\n", rule) == ("x\n\n", None)


# -- stop texts --------------------------------------------------------------------------------


@pytest.mark.parametrize("multiline", [False, True])
def test_stop_text_cuts_at_the_marker(multiline: bool) -> None:
    rule = StopRule(multiline=multiline, base_indent=4, stop_texts=("<|endoftext|>", "<file_sep>"))
    assert cut("x + 1<|endoftext|>junk", rule) == ("x + 1", "stop_text")
    assert cut("x + 1<file_sep>src/other.py", rule) == ("x + 1", "stop_text")


def test_stop_text_in_a_block() -> None:
    rule = StopRule(multiline=True, base_indent=6, stop_texts=("<EOT>",))
    text = "Count := Count + 1;\n      Done := True;<EOT>"
    assert cut(text, rule) == ("Count := Count + 1;\n      Done := True;", "stop_text")


def test_partial_marker_is_not_a_stop() -> None:
    rule = StopRule(multiline=False, stop_texts=("<|endoftext|>",))
    assert cut("x + 1<|endof", rule) == ("x + 1<|endof", None)


def test_unfinished_block_goes_on() -> None:
    rule = StopRule(multiline=True, base_indent=6, stop_texts=("<|endoftext|>",))
    text = "for I in 1 .. 10 loop\n         Sum := Sum + I;\n"
    assert cut(text, rule) == (text, None)


def test_the_earliest_stop_wins_on_a_whole_text() -> None:
    rule = StopRule(multiline=False, stop_texts=("<|endoftext|>",))
    assert cut("A + B;\n   end Add;<|endoftext|>", rule) == ("A + B;", "end_of_line")


def test_prose_ignores_lines_and_blocks_but_not_stop_texts() -> None:
    prose = StopRule(multiline=False, base_indent=8, stop_texts=("```",), prose=True)
    assert cut("First line.\nSecond, less indented.\n\n\nMore.", prose) == (
        "First line.\nSecond, less indented.\n\n\nMore.",
        None,
    )
    assert cut("x := 1;\n```\nafter", prose) == ("x := 1;\n", "stop_text")


# -- a block that ends with its first statement ------------------------------------------------


def first_statement(path: str, base: int) -> StopRule:
    lang = for_path(path)
    assert lang is not None
    return StopRule(multiline=True, base_indent=base, **lang.statement_rule())


@pytest.mark.parametrize(
    ("path", "base", "written", "kept"),
    [
        # A construct: its body, the lines that carry it on, and the line that closes it.
        (
            "p.adb",
            3,
            "if Ready then\n      X := 1;\n   elsif Late then\n      X := 2;\n   else\n"
            "      X := 3;\n   end if;\n   Y := 2;\n",
            "if Ready then\n      X := 1;\n   elsif Late then\n      X := 2;\n   else\n"
            "      X := 3;\n   end if;",
        ),
        # A simple statement: one line.
        ("p.adb", 3, "X := 1;\n   Y := 2;\n", "X := 1;"),
        # A subprogram: `is`, `begin` at its level carry it on; `end P;` closes it.
        (
            "p.adb",
            3,
            "procedure P is\n      N : Natural := 0;\n   begin\n      null;\n   end P;\n\n"
            "   procedure Q is\n",
            "procedure P is\n      N : Natural := 0;\n   begin\n      null;\n   end P;",
        ),
        (
            "e.vhd",
            2,
            "process (clk)\n  begin\n    if rising_edge(clk) then\n      q <= d;\n    end if;\n"
            "  end process;\n  y <= q;\n",
            "process (clk)\n  begin\n    if rising_edge(clk) then\n      q <= d;\n    end if;\n"
            "  end process;",
        ),
        # Python: no closing line; the block ends where the indentation comes back.
        (
            "m.py",
            4,
            "for x in xs:\n        total += x\n    else:\n        total = 0\n    return total\n",
            "for x in xs:\n        total += x\n    else:\n        total = 0",
        ),
        ("m.py", 0, "@cache\ndef f(x):\n    return x\n\nf(1)\n", "@cache\ndef f(x):\n    return x"),
        (
            "m.c",
            4,
            "if (x) {\n        y = 1;\n    } else {\n        y = 2;\n    }\n    return y;\n",
            "if (x) {\n        y = 1;\n    } else {\n        y = 2;\n    }",
        ),
        # A brace on a line of its own opens the body; `}` closes it.
        (
            "m.c",
            4,
            "while (n)\n    {\n        n--;\n    }\n    return n;\n",
            "while (n)\n    {\n        n--;\n    }",
        ),
        # `end else begin` carries the construct on; `end` closes it.
        (
            "t.v",
            4,
            "if (rst) begin\n      q <= 0;\n    end else begin\n      q <= d;\n    end\n"
            "    y <= q;\n",
            "if (rst) begin\n      q <= 0;\n    end else begin\n      q <= d;\n    end",
        ),
        # A bracket closed at the statement's level is kept; one that opens a body goes on.
        ("m.py", 4, "x = f(\n        a,\n    )\n    y = 1\n", "x = f(\n        a,\n    )"),
        (
            "m.py",
            0,
            "def f(\n    a,\n) -> int:  # sum\n    return a\n\nf(1)\n",
            "def f(\n    a,\n) -> int:  # sum\n    return a",
        ),
        # A docstring's lines are not statements.
        (
            "m.py",
            4,
            '"""Sum.\n\n    Skips None.\n    """\n    total = 0\n',
            '"""Sum.\n\n    Skips None.\n    """',
        ),
        # `case` labels at the level of their `switch`.
        (
            "m.c",
            4,
            "switch (x) {\n    case 1:\n        y = 1;\n    default:\n        y = 0;\n    }\n"
            "    return y;\n",
            "switch (x) {\n    case 1:\n        y = 1;\n    default:\n        y = 0;\n    }",
        ),
        # After a prelude (a generic's formals, an attribute), the unit it leads into.
        (
            "p.ads",
            3,
            "generic\n      type T is private;\n   procedure Swap (A, B : in out T);\n"
            "   procedure Q;\n",
            "generic\n      type T is private;\n   procedure Swap (A, B : in out T);",
        ),
        (
            "e.vhd",
            2,
            "u1 : entity work.counter\n    port map (\n      clk => clk\n  );\n  y <= q;\n",
            "u1 : entity work.counter\n    port map (\n      clk => clk\n  );",
        ),
        # A decorator over lines of its own leads into the function it decorates.
        (
            "m.py",
            0,
            "@pytest.mark.parametrize(\n    'a', [1]\n)\ndef t(a):\n    assert a\nx = 1\n",
            "@pytest.mark.parametrize(\n    'a', [1]\n)\ndef t(a):\n    assert a",
        ),
        # A statement that starts as a label: the next label is the next statement.
        (
            "m.c",
            4,
            "case 1:\n        y = 1;\n        break;\n    case 2:\n        y = 2;\n",
            "case 1:\n        y = 1;\n        break;",
        ),
        (
            "p.adb",
            6,
            "when Red =>\n         Go;\n      when Green =>\n         Stop;\n",
            "when Red =>\n         Go;",
        ),
        # `else` on the line after the brace that closes the `if` (Allman, GNU).
        (
            "m.c",
            4,
            "if (x)\n    {\n        y = 1;\n    }\n    else\n    {\n        y = 2;\n    }\n"
            "    return y;\n",
            "if (x)\n    {\n        y = 1;\n    }\n    else\n    {\n        y = 2;\n    }",
        ),
        # The C family's keywords are case-sensitive: Rust's `Default::default()` goes on no
        # construct.
        (
            "m.rs",
            4,
            "let a = 1;\n    Default::default()\n",
            "let a = 1;",
        ),
        # A Python string's lines, less indented than the block, are still the string's.
        (
            "m.py",
            8,
            'text = dedent("""\\\nfirst\nsecond\n""")\n        more()\n',
            'text = dedent("""\\\nfirst\nsecond\n""")',
        ),
    ],
)
def test_a_block_stops_at_the_end_of_its_first_statement(
    path: str, base: int, written: str, kept: str
) -> None:
    assert cut(written, first_statement(path, base)) == (kept, "end_of_statement")


def test_the_first_statement_waits_for_the_word_that_decides() -> None:
    rule = first_statement("p.adb", 3)
    # `el` may become `else` (the if goes on) or `Elapsed` (a new statement): go on.
    assert cut("if A then\n      B;\n   el", rule) == ("if A then\n      B;\n   el", None)
    # The closing line is kept whole, and the next line's first word is seen (`else`?).
    assert cut("if A then\n      B;\n   end if", rule) == ("if A then\n      B;\n   end if", None)
    assert cut("if A then\n      B;\n   end if;\n   ", rule)[1] is None
    # Leaving the block the cursor is in still ends it.
    assert cut("X := 1;\nend P;\n", rule) == ("X := 1;", "end_of_block")
    # Without the rule, the rest of the block.
    assert cut("X := 1;\n   Y := 2;\n", replace(rule, statement=False)) == (
        "X := 1;\n   Y := 2;\n",
        None,
    )


# -- a piece that loops within a line ----------------------------------------------------------

LOOPS = StopRule(multiline=False, piece_repeats=PIECE_REPEATS)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        # Answers of the quality benchmark (seed 2468) that ran to the line's 48-token limit.
        ("ome_dll_dll_dll_dll_dll_dll_dll_", "ome_dll"),
        ("p_Tcp_Tcp_Tcp_Tcp_Tcp_Tcp_Tcp_Tcp_", "p_Tcp"),
        ("\treturn IPP2P_GUTLEN_GET_GET_GET_GET_GET_", "\treturn IPP2P_GUTLEN_GET"),
        ("rray_t_t_t_t_t_t_t_t_t", "rray_t"),
        (
            "binary_str_to_bin_str(binary_str_to_bin_str(binary_str_to_bin_str(binary_str_to_bin_str(",
            "binary_str_to_bin_str(",
        ),
        # A call nested in a call (found as `f(`, not as `(f`), and one begun before the cursor.
        ("   Put (F(F(F(F(F(", "   Put (F("),
        # Hex letters are not digits outside a number.
        ("x = a_b_c_a_b_c_a_b_c_a_b_c_a", "x = a_b_c"),
    ],
)
def test_a_piece_written_four_times_in_a_row_ends_the_line_after_its_first_copy(
    text: str, kept: str
) -> None:
    assert cut(text, LOOPS) == (kept, "repetition")


def test_three_copies_go_on_and_the_fourth_ends_the_line() -> None:
    assert cut("X := Tcp_Tcp_Tcp", LOOPS) == ("X := Tcp_Tcp_Tcp", None)
    assert cut("X := Tcp_Tcp_Tcp_Tcp", LOOPS) == ("X := Tcp_Tcp_Tcp_Tcp", None)
    # The fourth `Tcp_`; what is kept ends where a part of the word ends, not at its `_`.
    assert cut("X := Tcp_Tcp_Tcp_Tcp_", LOOPS) == ("X := Tcp", "repetition")
    assert cut("X := p_Tcp_Tcp_Tcp_Tcp", LOOPS) == ("X := p_Tcp", "repetition")  # `p_Tc` x 4


def test_in_a_block_the_looping_line_is_cut_and_the_lines_above_kept() -> None:
    rule = StopRule(multiline=True, base_indent=3, piece_repeats=PIECE_REPEATS)
    text = "X := 1;\n   Y := Tcp_Tcp_Tcp_Tcp_Tcp"
    assert cut(text, rule) == ("X := 1;\n   Y := Tcp", "repetition")
    # The newline that completes the looping line came in the same step as the next line's start,
    # or as blank lines (a team server's chunk may carry several).
    assert cut(text + ";\n   Z", rule) == ("X := 1;\n   Y := Tcp", "repetition")
    assert cut("X := Tcp_Tcp_Tcp_Tcp_\n\n", LOOPS) == ("X := Tcp", "repetition")
    assert cut(text + ";\n\n\n", rule) == ("X := 1;\n   Y := Tcp", "repetition")


@pytest.mark.parametrize(
    ("line_before", "forced", "text"),
    [
        ('Key : constant String := "', '"', '"JefeJefeJefeJefe";'),  # in a string
        ("uint32_t mask = 0x", "0x", "0x5A5A5A5A5A5A5A5A;"),  # a number's digits
        ("Mask : constant := 16#", "#", "#FFFF_FFFF_FFFF_FFFF_FFFF#;"),
        ('constant C : std_logic_vector := x"', 'x"', 'x"A5A5_A5A5_A5A5_A5A5";'),
    ],
)
def test_what_the_line_opened_before_the_cursor_is_seen(
    line_before: str, forced: str, text: str
) -> None:
    # The suggestion starts inside a string or a number the user opened (the opening healed
    # off the prompt and forced): its repeated digits or test data are not a loop.
    for end in range(len(forced), len(text) + 1):
        assert cut_forced(text[:end], forced, LOOPS, line_before) == (text[:end], None)


def test_a_string_opened_far_back_on_a_long_line_is_seen() -> None:
    head = 'Msg : constant String := "' + "x" * 2_000
    assert cut("cdcdcdcdcdcd", LOOPS, head) == ("cdcdcdcdcdcd", None)
    assert cut("cdcdcdcdcdcd", LOOPS, head.replace('"', " ")) == ("cd", "repetition")


def test_a_long_line_cut_after_a_backslash_keeps_its_string_open() -> None:
    # The head is cut to its last HEAD_CHARS characters; not between `\\` and its `"`.
    head = 's = "' + "x" * 100 + '\\"' + "y" * (HEAD_CHARS - 1)
    assert head[-HEAD_CHARS - 1] == "\\"
    assert cut("abababababab", LOOPS, head) == ("abababababab", None)


def test_a_loop_begun_before_the_cursor_and_carried_on_ends_the_suggestion() -> None:
    assert cut("Tcp_Tcp_Tcp_", LOOPS, "   X := Tcp_Tcp_") == ("", "repetition")
    assert cut("bar(bar(bar(bar(", LOOPS, "x = foo(") == ("bar(", "repetition")
    # A run wholly before the cursor is the user's: what follows it is judged alone.
    assert cut(" : Integer;", LOOPS, "   Tcp_Tcp_Tcp_Tcp_Tcp") == (" : Integer;", None)


@pytest.mark.parametrize(
    "text",
    [
        "FALSE, FALSE, FALSE, FALSE, FALSE, FALSE,",  # a table's row
        "0xe6, 0xe6, 0xe6, 0xe6, 0xe6, 0xdc,",
        "(others => '0'), '0', '0', '0', '0',",
        "subtype Long_Long_Long_Unsigned is Unsigned_Types.Long_Long_Long_Unsigned;",
        "Mask : constant := 16#FFFF_FFFF_FFFF_FFFF_FFFF#;",  # a number's digits
        "uint64_t m = 0xABABABABABABABAB;",
        'constant C : std_logic_vector := x"DEAD_DEAD_DEAD_DEAD";',
        'Key : constant String := "JefeJefeJefeJefe";',  # test data in a string
        's = "ab\\"cdcdcdcdcdcd";',  # after an escaped quote, still in it
        'path = "C:\\\\" + "abababababab"',  # after an escaped backslash, a new string
        "assign w = 32'h5A5A5A5A;",  # Verilog's numbers
        "x <= 8'b10101010;",
        "------------------------------------------------",
        "Y := F (F (F (X)));",  # three calls deep: code
        "if ((((((((a)))))))) then",
        "x = 'AAAAAAAAAAAA'",
        "v := a[0][0][0][0][0];",
        "f()()()()();",
        "func(arg); func(arg); func(arg); func(arg); func(arg)",  # closed calls in a row
        "CFUNCTYPE(c_int, POINTER(BIGNUM), POINTER(BIGNUM), POINTER(BIGNUM), POINTER(BIGNUM))",
        "| Sequence[Sequence[Sequence[Sequence[_T]]]]",
        "X : T := (others => (others => (others => (others => '0'))));",
        "A : M := (1 => (1 => (1 => (1 => 0))));",
        'parse("f(f(f(f(x))))")',
        '{"a": {"a": {"a": {"a": 1}}}}',
    ],
)
def test_code_that_repeats_a_piece_is_not_cut(text: str) -> None:
    # Judged after every step, so at every length the text reaches.
    for end in range(1, len(text) + 1):
        assert cut(text[:end], LOOPS) == (text[:end], None), text[:end]


def test_no_line_of_the_sample_code_is_cut() -> None:
    root = Path(__file__).resolve().parents[2]
    files = [
        p
        for folder in ("examples", "tests/fixtures")
        for p in (root / folder).rglob("*")
        if p.suffix in (".adb", ".ads", ".vhd", ".vhdl", ".py", ".c", ".h")
    ]
    assert len(files) > 30
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            assert cut(line, LOOPS) == (line, None), f"{path}: {line}"


def test_the_rule_is_off_where_the_stop_rule_does_not_ask_for_it() -> None:
    # A line of the audit made before the rule replays without it (audit.replay).
    text = "ome_dll_dll_dll_dll_dll_dll_dll_"
    assert cut(text, LINE) == (text, None)
