"""The unit under the cursor, the identifier under it, and the parse check for proposed edits."""

from __future__ import annotations

import pytest

from context.languages import for_path
from context.units import check_edit, enclosing_unit, identifier_at, parsing_prefix

ADA = """package body Counters with SPARK_Mode is

   procedure Bump (C : in out Natural) is
   begin
      C := C + 1;
   end Bump;

end Counters;
"""
PY = '''def clamp(value, low, high):
    """The value, held between low and high."""
    if value < low:
        return low
    return min(value, high)


class Box:
    def area(self):
        return 1
'''
VHDL = """architecture rtl of counter is
begin
  tick : process (clk)
  begin
    if rising_edge(clk) then
      count <= count + 1;
    end if;
  end process;
end architecture;
"""


def lang(name: str):  # type: ignore[no-untyped-def]
    language = for_path(name)
    assert language is not None
    return language


def parse(name: str, text: str):  # type: ignore[no-untyped-def]
    return lang(name).parser().parse(text.encode())


@pytest.mark.parametrize(
    ("name", "text", "inside", "kind", "first_line"),
    [
        ("c.adb", ADA, "C := C + 1", "subprogram_body", "procedure Bump"),
        ("c.py", PY, "return low", "function_definition", "def clamp"),
        ("c.py", PY, "return 1", "function_definition", "def area"),  # innermost wins
        ("c.vhd", VHDL, "count <= count", "process_statement", "tick : process"),
    ],
)
def test_enclosing_unit(name: str, text: str, inside: str, kind: str, first_line: str) -> None:
    tree = parse(name, text)
    at = text.encode().index(inside.encode())
    unit = enclosing_unit(tree, lang(name), at)
    assert unit is not None and unit.kind == kind
    assert text.encode()[unit.start_byte :].decode().startswith(first_line)


def test_no_unit_outside_any_subprogram() -> None:
    tree = parse("c.adb", ADA)
    assert enclosing_unit(tree, lang("c.adb"), 3) is None


def test_identifier_at_touches_either_end_and_counts_bytes() -> None:
    full = "procedure P is begin X := Höhe_Max + Y; end P;".encode()
    tree = parse("h.adb", full.decode())
    start = full.index("Höhe".encode())
    end = full.index(b" + Y")
    for at in (start, start + 3, end):  # its first byte, inside, just after its end
        assert identifier_at(tree, full, at) == ("Höhe_Max", start, end)
    assert identifier_at(tree, full, full.index(b":=") + 1) is None
    # Without a tree (no grammar): a word around the offset.
    assert identifier_at(None, full, start + 3) == ("Höhe_Max", start, end)


def test_an_edit_that_breaks_the_parse_is_caught() -> None:
    source = PY.encode()
    start = source.index(b"    return min")
    end = source.index(b"\n", start)
    good = check_edit(
        lang("c.py"), source, start, end, "    return high if value > high else value"
    )
    bad = check_edit(lang("c.py"), source, start, end, "    return (high if value >")
    assert good.ok and good.errors_after == 0
    assert not bad.ok and bad.errors_after > 0 and bad.first_error_line is not None


def test_a_document_with_errors_may_keep_them_but_not_gain_more() -> None:
    broken = PY.replace("return 1", "return (1")
    source = broken.encode()
    start = source.index(b"return low")
    same = check_edit(lang("c.py"), source, start, start + 10, "return low  ")
    worse = check_edit(lang("c.py"), source, start, start + 10, "return low +")
    assert same.ok and same.errors_before > 0
    assert not worse.ok


def test_incremental_check_agrees_with_a_fresh_parse() -> None:
    source = ADA.encode()
    tree = parse("c.adb", ADA)
    at = source.index(b"C := C + 1;")
    for new in ("C := C + 2;", "C := C +;", "if C > 0 then C := 0; end if;", "begin"):
        incremental = check_edit(lang("c.adb"), source, at, at + 11, new, tree=tree)
        fresh = check_edit(lang("c.adb"), source, at, at + 11, new)
        assert incremental == fresh, new


def test_completions_are_cut_back_to_the_lines_that_keep_the_block_parsing() -> None:
    text = "def f(x):\n    y = x\n    \n    return y\n"
    source = text.encode()
    at = source.index(b"    \n") + 4
    language = lang("f.py")
    assert parsing_prefix(language, source, None, at, "y = y + 1") == ("y = y + 1", "ok")
    cut = parsing_prefix(language, source, None, at, "y = y + 1\n    z = (y +")
    assert cut == ("y = y + 1", "trimmed 1 lines")
    assert parsing_prefix(language, source, None, at, "y = (") == ("", "withheld")


def test_a_first_line_that_opens_a_block_is_kept_though_it_cannot_parse_alone() -> None:
    text = "procedure P is\nbegin\n   X := 1;\n   \n   Y := 2;\nend P;\n"
    source = text.encode()
    at = source.index(b"   \n") + 3
    ada = lang("p.adb")
    kept = parsing_prefix(ada, source, None, at, "if X > 0 then  -- positive\n      Z := (")
    assert kept == ("if X > 0 then  -- positive", "opens a block")
    assert parsing_prefix(ada, source, None, at, "if X > 0") == ("", "withheld")
    assert parsing_prefix(ada, source, None, at, "X := X + -- then") == ("", "withheld")


def test_a_block_that_did_not_parse_cannot_be_judged() -> None:
    text = "def f(x):\n    y = (x +\n    return y\n"
    source = text.encode()
    at = source.index(b"(x +") + 4
    assert parsing_prefix(lang("f.py"), source, None, at, " ]]") == (" ]]", "ok")


def test_syntax_errors_in_code_nested_deeper_than_the_stack_are_found() -> None:
    from context.languages import for_path
    from context.units import syntax_errors

    language = for_path("deep.py")
    assert language is not None
    depth = 20_000
    broken = ("x = " + "[" * depth + "1 +" + "]" * depth + "\n").encode()  # the error innermost
    errors = syntax_errors(language.parser().parse(broken))
    assert errors and errors[0].start_byte >= 0
    whole = ("x = " + "[" * depth + "1" + "]" * depth + "\n").encode()
    assert syntax_errors(language.parser().parse(whole)) == []


def test_the_unit_around_code_nested_20000_deep_is_found() -> None:
    from context.languages import for_path

    language = for_path("deep.py")
    assert language is not None
    depth = 20_000
    text = "def outer():\n    return " + "[" * depth + "]" * depth + "\n\ndef after():\n    pass\n"
    tree = language.parser().parse(text.encode())
    unit = enclosing_unit(tree, language, text.index("]"))  # the innermost point
    assert unit is not None and unit.kind == "function_definition" and unit.start_byte == 0
    assert unit.end_byte == text.index("\n\ndef after")
