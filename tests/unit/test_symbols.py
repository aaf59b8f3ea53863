"""Definitions and imports found by the registry's tree-sitter queries, on real-looking files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from context.languages import LANGUAGES, QUERY_KINDS, Language, for_document, for_path
from context.symbols import (
    DEFINITION_KINDS,
    IMPORT_KINDS,
    SIGNATURE_MAX_LINES,
    Definition,
    Import,
    definitions,
    imports,
    symbols,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "symbols"

# One fixture per language in the registry (SPARK is Ada: stacks.ads).
FIXTURE_OF = {
    "ada": "sensors.ads",
    "vhdl": "uart_tx.vhd",
    "verilog": "counter.v",
    "systemverilog": "bus_pkg.sv",
    "c": "ring.c",
    "cpp": "geometry.cpp",
    "python": "telemetry.py",
    "rust": "scheduler.rs",
    "go": "server.go",
    "java": "Navigator.java",
    "javascript": "widget.js",
    "typescript": "store.ts",
    "typescriptreact": "panel.tsx",
}


def _language(name: str) -> Language:
    lang = for_path(name)
    assert lang is not None, name
    return lang


def defs(name: str) -> list[Definition]:
    return definitions((FIXTURES / name).read_bytes(), _language(name))


def imps(name: str) -> list[Import]:
    return imports((FIXTURES / name).read_bytes(), _language(name))


def names(found: list[Definition], kind: str) -> list[str]:
    return [d.name for d in found if d.kind == kind]


def one(found: list[Definition], name: str, kind: str | None = None) -> Definition:
    hits = [d for d in found if d.name == name and (kind is None or d.kind == kind)]
    assert len(hits) == 1, (name, kind, hits)
    return hits[0]


def pairs(found: list[Import]) -> list[tuple[str, str]]:
    return [(i.name, i.kind) for i in found]


# The registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES, ids=lambda lang: lang.name)
def test_every_language_has_both_queries_with_known_captures(lang: Language) -> None:
    allowed = {"name", "body", "signature"}
    allowed |= {f"definition.{k}" for k in DEFINITION_KINDS}
    allowed |= {f"import.{k}" for k in IMPORT_KINDS}
    for kind in QUERY_KINDS:
        query = lang.query(kind)
        assert query.pattern_count > 0
        captures = {query.capture_name(i) for i in range(query.capture_count)}
        assert {c for c in captures if not c.startswith("_")} <= allowed, (lang.name, kind)


def test_queries_are_compiled_once_and_unknown_kinds_refused() -> None:
    ada = _language("x.adb")
    assert ada.query("definitions") is ada.query("definitions")
    with pytest.raises(ValueError, match="unknown query kind"):
        ada.query("highlights")  # type: ignore[arg-type]


def test_registry_entries_stay_frozen_and_found() -> None:
    ada = _language("x.ads")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ada.name = "spark"  # type: ignore[misc]
    assert for_document("x.txt", "vhdl") is _language("x.vhd")
    assert _language("panel.tsx").queries == "typescript"  # TSX shares TypeScript's queries


@pytest.mark.parametrize("language", sorted(FIXTURE_OF))
def test_every_language_finds_definitions_and_imports(language: str) -> None:
    fixture = FIXTURE_OF[language]
    assert _language(fixture).name == language
    found = defs(fixture)
    assert found and all(d.kind in DEFINITION_KINDS for d in found)
    assert all(d.start_line <= d.end_line for d in found)
    assert [d.start_line for d in found] == sorted(d.start_line for d in found)
    assert imps(fixture) and all(i.kind in IMPORT_KINDS for i in imps(fixture))


@pytest.mark.parametrize("lang", LANGUAGES, ids=lambda lang: lang.name)
def test_an_empty_file_has_nothing(lang: Language) -> None:
    assert definitions(b"", lang) == []
    assert imports(b"", lang) == []


def test_a_tree_already_parsed_gives_the_same_answer() -> None:
    source = (FIXTURES / "sensors.adb").read_bytes()
    lang = _language("sensors.adb")
    tree = lang.parser().parse(source)
    assert definitions(source, lang, tree) == definitions(source, lang)
    assert imports(source, lang, tree) == imports(source, lang)


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.iterdir() if for_path(p.name)))
def test_one_walk_finds_what_the_two_queries_find(fixture: str) -> None:
    # The index's scan matches both kinds in one query: what it finds is what each finds alone.
    source = (FIXTURES / fixture).read_bytes()
    found, imported = symbols(source, _language(fixture))
    assert (found, imported) == (defs(fixture), imps(fixture))
    assert found or imported


# Ada -------------------------------------------------------------------------------------------


def test_ada_spec_declarations() -> None:
    found = defs("sensors.ads")
    assert one(found, "Sensors").kind == "package"
    types = ["Channel_Id", "Sample", "Sample_Array", "Buffer", "Element_Array", "Buffer"]
    assert names(found, "type") == types
    assert names(found, "subtype") == ["Reading"]
    assert names(found, "constant") == ["Max_Channels"]
    assert names(found, "function") == ["Mean", "Is_Valid", "Count", "Peek"]
    assert names(found, "procedure") == ["Reset", "Push", "Put"]

    sample = one(found, "Sample")
    assert (sample.start_line, sample.end_line) == (11, 15)
    assert "Stamp   : Ada.Real_Time.Time;" in sample.signature

    mean = one(found, "Mean")
    assert (mean.start_line, mean.end_line) == (19, 20)
    assert mean.signature.splitlines() == [
        "function Mean (Samples : Sample_Array) return Reading",
        "     with Pre => Samples'Length > 0;",
    ]
    assert mean.contracts == ("Pre => Samples'Length > 0",)
    assert one(found, "Is_Valid").signature.endswith("is (S.Value < 4_096);")


def test_ada_generics_tasks_and_protected_objects() -> None:
    found = defs("sensors.ads")
    ring = one(found, "Ring_Buffers")
    assert ring.kind == "generic"
    assert (ring.start_line, ring.end_line) == (26, 39)
    assert ring.signature.startswith("generic\n      type Element is private;")
    assert ring.signature.endswith("package Ring_Buffers")
    max_of = one(found, "Max_Of")
    assert max_of.kind == "generic" and "return Reading;" in max_of.signature
    instance = one(found, "Sample_Buffers")
    assert instance.kind == "package" and "is new Ring_Buffers" in instance.signature

    latest = one(found, "Latest")
    assert latest.kind == "protected" and (latest.start_line, latest.end_line) == (47, 54)
    poller = one(found, "Poller")
    assert poller.kind == "task" and "(Channel : Channel_Id)" in poller.signature
    assert one(found, "Watchdog").kind == "task"


def test_ada_body_declarations_stop_at_is() -> None:
    found = defs("sensors.adb")
    assert [(d.name, d.kind) for d in found] == [
        ("Sensors", "package_body"),
        ("Poll_Count", "variable"),
        ("Mean", "function"),
        ("Reset", "procedure"),
        ("Ring_Buffers", "package_body"),
        ("Push", "procedure"),
        ("Count", "function"),
        ("Max_Of", "function"),
        ("Latest", "protected"),
        ("Put", "procedure"),
        ("Peek", "function"),
        ("Poller", "task"),
        ("Watchdog", "task"),
    ]
    mean = one(found, "Mean")
    assert (mean.start_line, mean.end_line) == (7, 14)
    assert mean.signature == "function Mean (Samples : Sample_Array) return Reading"
    assert one(found, "Sensors").signature == "package body Sensors"
    assert one(found, "Latest").signature == "protected body Latest"
    assert one(found, "Poller").signature == "task body Poller"


def test_ada_with_and_use_clauses() -> None:
    assert [(i.name, i.kind, i.line) for i in imps("sensors.ads")] == [
        ("Ada.Real_Time", "with", 1),
        ("Interfaces", "with", 2),
        ("Interfaces", "use", 2),
    ]
    assert pairs(imps("sensors.adb")) == [("Ada.Text_IO", "with"), ("Ada.Text_IO", "use")]


def test_spark_contracts_on_subprogram_declarations() -> None:
    found = defs("stacks.ads")
    add = one(found, "Add")
    assert add.contracts == (
        "Pre => A > 0 and then B < Integer'Last - A",
        "Post => Add'Result = A + B",
        "Global => null",
    )
    assert (add.start_line, add.end_line) == (15, 18)
    assert add.signature.startswith("function Add (A, B : Integer) return Integer\n")
    assert "Global => null;" in add.signature

    push = one(found, "Push")
    assert push.contracts == (
        "Global => (In_Out => State)",
        "Depends => (State => (State, X))",
        "Pre => Size < Max",
        "Post => Size = Size'Old + 1",
    )
    assert one(found, "Size").contracts == ("Global => State",)
    assert one(found, "Clear").contracts == ("SPARK_Mode => Off",)
    assert one(found, "Max").contracts == ()


def test_spark_mode_on_the_package_from_aspect_and_configuration_pragma() -> None:
    stacks = one(defs("stacks.ads"), "Stacks")
    assert stacks.kind == "package"
    assert stacks.contracts == (
        "SPARK_Mode",
        "Abstract_State => State",
        "Initializes => State",
        "SPARK_Mode => On",  # the `pragma SPARK_Mode (On);` before the unit
    )
    assert stacks.signature.endswith("Initializes    => State")


def test_spark_mode_pragmas_inside_units_in_any_case() -> None:
    # The pragma is looked for only where its name is in the declaration's text: any case.
    source = b"""package body Counters is
   pragma Spark_Mode (Off);
   procedure Bump (X : in out Integer) is
      pragma SPARK_MODE (On);
   begin
      X := X + 1;
   end Bump;
   procedure Plain (X : in out Integer) is
   begin
      X := 0;  --  spark_mode in a comment is not a pragma
   end Plain;
end Counters;
"""
    found = definitions(source, _language("counters.adb"))
    assert one(found, "Counters").contracts == ("Spark_Mode => Off",)
    assert one(found, "Bump").contracts == ("SPARK_MODE => On",)
    assert one(found, "Plain").contracts == ()


def test_non_spark_ada_has_no_contracts() -> None:
    assert all(d.contracts == () for d in defs("sensors.adb"))


# VHDL ------------------------------------------------------------------------------------------


def test_vhdl_design_units_and_declarations() -> None:
    found = defs("uart_tx.vhd")
    assert [(d.name, d.kind) for d in found] == [
        ("uart_pkg", "package"),
        ("DATA_BITS", "constant"),
        ("parity_t", "type"),
        ("byte_t", "subtype"),
        ("parity_of", "function"),
        ("check_frame", "procedure"),
        ("uart_tx", "component"),
        ("uart_pkg", "package_body"),
        ("parity_of", "function"),
        ("check_frame", "procedure"),
        ("uart_tx", "entity"),
        ("rtl", "architecture"),
        ("state_t", "type"),
        ("state", "signal"),
        ("bit_idx", "signal"),
        ("shreg", "signal"),
        ("STOP", "constant"),
    ]


def test_vhdl_entity_signature_has_generics_and_ports() -> None:
    entity = one(defs("uart_tx.vhd"), "uart_tx", "entity")
    assert (entity.start_line, entity.end_line) == (48, 58)
    for text in (
        "CLKS_PER_BIT : positive := 868",
        "clk   : in  std_logic",
        "tx    : out std_logic",
    ):
        assert text in entity.signature
    component = one(defs("uart_tx.vhd"), "uart_tx", "component")
    assert "data  : in  byte_t;" in component.signature


def test_vhdl_subprogram_and_architecture_signatures() -> None:
    found = defs("uart_tx.vhd")
    bodies = [d for d in found if d.name == "parity_of"]
    assert bodies[0].signature.endswith("return std_logic;")  # the declaration, whole
    assert bodies[1].signature == (
        "function parity_of (data : byte_t; mode : parity_t) return std_logic"
    )
    assert (bodies[1].start_line, bodies[1].end_line) == (26, 36)
    assert one(found, "rtl").signature == "architecture rtl of uart_tx"


def test_vhdl_library_and_use_clauses() -> None:
    assert [(i.name, i.kind, i.line) for i in imps("uart_tx.vhd")] == [
        ("ieee", "library", 1),
        ("ieee.std_logic_1164", "use", 2),
        ("ieee.numeric_std", "use", 3),
        ("work", "library", 5),
        ("work.util_pkg", "use", 6),
        ("ieee", "library", 44),
        ("ieee.std_logic_1164", "use", 45),
        ("work.uart_pkg", "use", 46),
    ]


# Verilog and SystemVerilog ---------------------------------------------------------------------


def test_verilog_modules_functions_tasks() -> None:
    found = defs("counter.v")
    assert [(d.name, d.kind) for d in found] == [
        ("counter", "module"),
        ("MAX", "constant"),
        ("next_value", "function"),
        ("reset_count", "task"),
        ("top", "module"),
    ]
    counter = one(found, "counter")
    assert (counter.start_line, counter.end_line) == (4, 32)
    assert "parameter WIDTH = 8" in counter.signature
    assert "output reg [WIDTH-1:0]  count" in counter.signature
    assert "localparam" not in counter.signature
    assert "input [WIDTH-1:0] value;" in one(found, "next_value").signature
    assert pairs(imps("counter.v")) == [("defines.vh", "include")]


def test_systemverilog_packages_classes_interfaces() -> None:
    found = defs("bus_pkg.sv")
    assert [(d.name, d.kind) for d in found] == [
        ("bus_pkg", "package"),
        ("state_e", "enum"),
        ("txn_t", "struct"),
        ("mask", "function"),
        ("Txn", "class"),
        ("run", "method"),
        ("bus_if", "interface"),
        ("regs", "module"),
    ]
    assert one(found, "bus_pkg").signature == "package bus_pkg;"
    assert "input int bits" in one(found, "mask").signature
    assert "input  bus_pkg::txn_t req" in one(found, "regs").signature
    assert [(i.name, i.kind, i.line) for i in imps("bus_pkg.sv")] == [
        ("uvm_macros.svh", "include", 1),
        ("bus_pkg", "import", 26),
        ("bus_pkg::mask", "import", 39),
    ]


# C and C++ -------------------------------------------------------------------------------------


def test_c_functions_types_macros() -> None:
    found = defs("ring.c")
    assert names(found, "macro") == ["RING_CAPACITY", "RING_NEXT"]
    assert names(found, "type") == ["byte_t", "ring_stats_t"]
    assert names(found, "struct") == ["ring"]
    assert names(found, "enum") == ["ring_status"]
    functions = ["ring_push", "ring_is_full", "ring_push", "ring_status_name"]
    assert names(found, "function") == functions
    assert names(found, "variable") == ["stats"]
    assert "head" in names(found, "field")

    push = [d for d in found if d.name == "ring_push"]
    assert push[0].signature == "int ring_push(struct ring *r, byte_t value);"  # the prototype
    assert push[1].signature == "int ring_push(struct ring *r, byte_t value)"
    assert (push[1].start_line, push[1].end_line) == (32, 42)
    assert one(found, "ring_status_name").signature.startswith("const char *ring_status_name(")
    macro = one(found, "RING_NEXT")
    assert (macro.start_line, macro.end_line) == (6, 6)  # the #define's newline is not a line
    assert pairs(imps("ring.c")) == [
        ("stdint.h", "include"),
        ("string.h", "include"),
        ("ring.h", "include"),
    ]


def test_cpp_classes_namespaces_methods_templates() -> None:
    found = defs("geometry.cpp")
    assert one(found, "nav").kind == "module"
    assert one(found, "nav").signature == "namespace nav"
    assert one(found, "Quaternion", "class").end_line == 24
    assert names(found, "method") == ["norm", "Quaternion", "rotate", "identity", "rotate"]
    out_of_line = [d for d in found if d.name == "rotate"][1]
    assert out_of_line.signature == "Vec3 Quaternion::rotate(const Vec3 &v) const"
    clamp = one(found, "clamp")
    assert clamp.kind == "function" and clamp.start_line == 31
    assert clamp.signature == "template <typename T>\nT clamp(T value, T lo, T hi)"
    assert one(found, "Frame").kind == "enum"
    assert one(found, "Path").kind == "type"
    assert one(found, "DEG2RAD").kind == "macro"
    assert pairs(imps("geometry.cpp")) == [
        ("cmath", "include"),
        ("vector", "include"),
        ("geometry.hpp", "include"),
    ]


# Python ----------------------------------------------------------------------------------------


def test_python_classes_functions_methods_assignments() -> None:
    found = defs("telemetry.py")
    assert names(found, "constant") == ["FRAME_MAGIC", "HEADER_FORMAT"]
    assert names(found, "variable") == ["retry_budget"]
    assert names(found, "class") == ["Frame", "Downlink"]
    assert names(found, "method") == ["checksum", "size", "__init__", "send"]
    assert names(found, "function") == ["decode", "_helper", "inner"]
    assert names(found, "field") == ["channel", "payload", "queue"]

    frame = one(found, "Frame")
    assert (frame.start_line, frame.end_line) == (16, 28)  # from the decorator
    assert frame.signature == "@dataclass(frozen=True)\nclass Frame:"
    assert one(found, "size").signature == "@property\n    def size(self) -> int:"
    send = one(found, "send")
    assert send.signature == "async def send(self, frame: Frame, *, timeout: float = 1.0) -> bool:"


def test_python_imports() -> None:
    assert [(i.name, i.kind, i.line) for i in imps("telemetry.py")] == [
        ("os.path", "import", 4),
        ("struct", "import", 5),
        ("zlib", "import", 5),
        ("collections", "import", 6),
        ("dataclasses", "import", 7),
        (".", "import", 8),
        (".limits", "import", 9),
    ]


# Rust, Go, Java --------------------------------------------------------------------------------


def test_rust_items() -> None:
    found = defs("scheduler.rs")
    assert one(found, "Task", "struct").signature.startswith("pub struct Task {")
    assert one(found, "State").kind == "enum"
    assert one(found, "Runnable").kind == "trait"
    assert one(found, "Runnable").signature == "pub trait Runnable"
    assert names(found, "method") == ["run", "name", "new", "run"]
    assert names(found, "function") == ["tick", "ticks"]
    assert one(found, "tick").signature == (
        "pub fn tick(tasks: &mut HashMap<TaskId, Task>) -> usize"
    )
    assert names(found, "module") == ["queue", "tests"]
    assert one(found, "schedule").kind == "macro"
    assert one(found, "MAX_TASKS").kind == "constant"
    assert one(found, "TaskId").kind == "type"
    assert pairs(imps("scheduler.rs")) == [
        ("std::collections::{BinaryHeap, HashMap}", "use"),
        ("std::time::Duration", "use"),
        ("crate::clock::Instant", "use"),
        ("super", "use"),
        ("alloc", "import"),
    ]


def test_go_declarations() -> None:
    found = defs("server.go")
    assert names(found, "struct") == ["Sample", "Server"]
    assert names(found, "interface") == ["Sink"]
    assert names(found, "function") == ["NewServer"]
    assert names(found, "method") == ["Write", "Serve", "String"]
    assert one(found, "Serve").signature == "func (s *Server) Serve(ctx context.Context) error"
    assert one(found, "DefaultPort").kind == "constant"
    assert one(found, "mu").kind == "variable"
    assert [(i.name, i.kind, i.line) for i in imps("server.go")] == [
        ("context", "import", 4),
        ("fmt", "import", 5),
        ("net/http", "import", 6),
        ("sync", "import", 9),
    ]


def test_java_declarations() -> None:
    found = defs("Navigator.java")
    nav = one(found, "Navigator", "class")
    assert nav.signature == "public class Navigator implements Comparable<Navigator>"
    assert (nav.start_line, nav.end_line) == (7, 31)
    assert names(found, "method") == ["Navigator", "distance", "compareTo", "onFix"]
    assert one(found, "compareTo").signature.startswith("@Override\n")
    assert one(found, "EARTH_RADIUS").kind == "constant"
    assert one(found, "headings").kind == "field"
    assert one(found, "Listener").kind == "interface"
    assert one(found, "Mode").kind == "enum"
    assert one(found, "Fix").kind == "class"
    assert pairs(imps("Navigator.java")) == [
        ("java.util.List", "import"),
        ("java.util", "import"),
        ("java.lang.Math.sqrt", "import"),
    ]


# JavaScript and TypeScript ---------------------------------------------------------------------


def test_javascript_declarations() -> None:
    found = defs("widget.js")
    assert one(found, "StatusWidget").signature == (
        "export class StatusWidget extends React.Component"
    )
    assert names(found, "method") == ["constructor", "render"]
    assert names(found, "function") == ["poll", "toLabel", "ids"]
    assert one(found, "poll").signature == "export function poll(url, { retries = 3 } = {})"
    assert names(found, "constant") == ["fs", "REFRESH_MS"]
    assert names(found, "variable") == ["counter"]
    assert [(i.name, i.kind, i.line) for i in imps("widget.js")] == [
        ("react", "import", 1),
        ("./util/time.js", "import", 2),
        ("../api", "import", 3),
        ("fs", "import", 4),
        ("./render", "import", 5),
    ]


def test_typescript_declarations() -> None:
    found = defs("store.ts")
    assert [(d.name, d.kind) for d in found] == [
        ("Parameter", "interface"),
        ("Listener", "type"),
        ("Unit", "enum"),
        ("Store", "class"),
        ("items", "field"),
        ("constructor", "method"),
        ("get", "method"),
        ("persist", "method"),
        ("createStore", "function"),
        ("VERSION", "constant"),
        ("Internal", "module"),
        ("log", "function"),
    ]
    assert "value: T;" in one(found, "Parameter").signature
    assert one(found, "Store").signature == ("export abstract class Store<T> extends EventEmitter")
    assert pairs(imps("store.ts")) == [
        ("events", "import"),
        ("./config", "import"),
        ("./defaults", "import"),
        ("fs", "import"),
    ]


def test_tsx_declarations() -> None:
    found = defs("panel.tsx")
    assert [(d.name, d.kind) for d in found] == [
        ("PanelProps", "interface"),
        ("AlarmPanel", "function"),
        ("Badge", "function"),
    ]
    panel = one(found, "AlarmPanel")
    assert (panel.start_line, panel.end_line) == (9, 18)
    assert "{ alarms, onAck }: PanelProps" in panel.signature
    assert pairs(imps("panel.tsx")) == [("react", "import"), ("./alarm", "import")]


# Damaged, long and non-ASCII files -------------------------------------------------------------


def test_a_syntax_error_keeps_what_tree_sitter_recovered() -> None:
    ada = defs("broken.adb")
    assert [(d.name, d.start_line) for d in ada if d.kind != "package_body"][:1] == [
        ("Good_Before", 4)
    ]
    assert "Good_After" in names(ada, "function")
    py = defs("broken.py")
    assert "loads_ok" in names(py, "function")
    assert one(py, "StillHere").kind == "class"
    assert pairs(imps("broken.py")) == [("json", "import")]


def test_a_long_declaration_signature_is_cut() -> None:
    fields = "".join(f"    int f{i};\n" for i in range(40))
    source = f"struct big {{\n{fields}}};\n".encode()
    big = one(definitions(source, _language("x.c")), "big")
    assert (big.start_line, big.end_line) == (0, 41)
    assert len(big.signature.splitlines()) == SIGNATURE_MAX_LINES


def test_non_ascii_text_does_not_shift_lines() -> None:
    ada = defs("unicode.adb")
    assert [(d.name, d.kind, d.start_line, d.end_line) for d in ada] == [
        ("Régulation", "package_body", 4, 14),
        ("Mise_À_Jour", "procedure", 7, 10),
        ("Gain", "function", 12, 12),
    ]
    assert one(ada, "Mise_À_Jour").signature == "procedure Mise_À_Jour (Consigne : Float)"
    assert [(i.name, i.line) for i in imps("unicode.adb")] == [("Ada.Text_IO", 2)]

    py = defs("unicode.py")
    assert [(d.name, d.kind, d.start_line) for d in py] == [
        ("ÉCHELLE", "constant", 3),
        ("température", "function", 6),
        ("Четчик", "class", 11),
        ("увеличить", "method", 12),
    ]
