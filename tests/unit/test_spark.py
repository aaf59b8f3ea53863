"""SPARK contracts: which subprogram lacks one, reading a model's aspects, placing them."""

from __future__ import annotations

from context.languages import for_path
from context.spark import aspects_edit, contract_target, parse_aspects
from context.symbols import definitions
from context.units import syntax_errors

ADA = for_path("x.ads")
SPEC = """package Counters with SPARK_Mode is

   Limit : constant := 100;

   procedure Bump (C : in out Natural);

   function Next (C : Natural) return Natural
     with Post => Next'Result = C + 1;

   procedure Reset (C : out Natural)
     with Global => null, Pre => True, Post => C = 0;

end Counters;
"""
OFF = """package Legacy with SPARK_Mode => Off is
   procedure Bump (C : in out Natural);
end Legacy;
"""
BODY = """pragma SPARK_Mode;
package body Counters is
   procedure Local (C : in out Natural) is
   begin
      C := 0;
   end Local;
end Counters;
"""


def target(text: str, at: str):  # type: ignore[no-untyped-def]
    assert ADA is not None
    source = text.encode()
    return contract_target(ADA.parser().parse(source), source, source.index(at.encode()))


def with_edit(text: str, at: str, aspects: list[tuple[str, str]]) -> str:
    t = target(text, at)
    offset, insert = aspects_edit(t, aspects)
    source = text.encode()
    return (source[:offset] + insert.encode() + source[offset:]).decode()


def contracts_of(text: str, name: str) -> tuple[str, ...]:
    assert ADA is not None
    tree = ADA.parser().parse(text.encode())
    assert not syntax_errors(tree), text
    return next(d for d in definitions(text.encode(), ADA, tree) if d.name == name).contracts


def test_a_subprogram_without_a_contract_is_a_target() -> None:
    t = target(SPEC, "Bump")
    assert t is not None and t.name == "Bump" and t.missing == ("Global", "Pre", "Post")
    assert t.specification == "procedure Bump (C : in out Natural)"
    assert not t.appends


def test_missing_aspects_are_named_and_complete_contracts_are_left_alone() -> None:
    t = target(SPEC, "Next")
    assert t is not None and t.missing == ("Global", "Pre") and t.appends
    assert target(SPEC, "Reset") is None


def test_only_under_spark_mode() -> None:
    assert target(OFF, "Bump") is None
    body = target(BODY, "Local")  # a configuration pragma before the unit turns it on
    assert body is not None and body.name == "Local"
    assert target(SPEC.replace(" with SPARK_Mode", ""), "Bump") is None


def test_new_aspects_go_after_the_specification_and_parse() -> None:
    after = with_edit(SPEC, "Bump", [("Global", "null"), ("Post", "C = C'Old + 1")])
    assert contracts_of(after, "Bump") == ("Global => null", "Post => C = C'Old + 1")
    assert "procedure Bump (C : in out Natural)\n     with Global => null,\n" in after


def test_aspects_join_an_existing_list_and_present_ones_are_not_repeated() -> None:
    after = with_edit(SPEC, "Next", [("Post", "True"), ("Pre", "C < Natural'Last")])
    assert contracts_of(after, "Next") == ("Post => Next'Result = C + 1", "Pre => C < Natural'Last")


def test_a_body_gets_its_aspects_before_is() -> None:
    after = with_edit(BODY, "Local", [("Global", "null")])
    assert "procedure Local (C : in out Natural)\n     with Global => null is" in after
    assert contracts_of(after, "Local")[0] == "Global => null"


def test_parse_aspects_reads_a_reply_and_drops_what_is_not_a_contract() -> None:
    reply = "Global => (In_Out => State),\n  Pre => C < Limit and then (X, Y) /= (0, 0),\n"
    reply += "  Inline => True, Post => C = C'Old + 1\nthat is all"
    assert parse_aspects(reply) == [
        ("Global", "(In_Out => State)"),
        ("Pre", "C < Limit and then (X, Y) /= (0, 0)"),
        ("Post", "C = C'Old + 1 that is all"),
    ]
    assert parse_aspects("I cannot help with that.") == []
