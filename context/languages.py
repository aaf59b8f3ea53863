"""The language registry: one entry per language, its file suffixes, grammar and queries.

Grammars come from per-language PyPI packages that ship compiled parsers: nothing is downloaded at
run time. SPARK is Ada (`SPARK_Mode` and contract aspects), so it shares Ada's entry.

The queries that find definitions and imports are ours, in `context/queries/<stem>-<kind>.scm`
(few grammars ship a tags query, and Ada and VHDL ship none); `context.symbols` runs them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePath
from typing import Any, Literal

from tree_sitter import Language as TSLanguage
from tree_sitter import Parser, Query

# "symbols": both in one query (the definitions' patterns first, so their numbers hold), for a
# scan that wants both from one walk of the tree: walking it costs as much as matching.
QueryKind = Literal["definitions", "imports", "symbols"]
QUERY_KINDS: tuple[QueryKind, ...] = ("definitions", "imports", "symbols")


@dataclass(frozen=True, slots=True, kw_only=True)
class Language:
    name: str  # the LSP language id where one exists
    suffixes: tuple[str, ...]
    module: str  # the grammar package
    function: str = "language"  # the function in it that returns the grammar
    line_comment: str = "//"
    queries: str = ""  # the stem of this language's query files; its name when empty
    # How a line that opens a block ends (a regular expression, case-insensitive, matched against
    # the line without its comment): below it, on an empty line, a block is suggested.
    block_open: str = r"\{$"
    # Where a block suggestion ends with its first statement (inference.stops): a line at the
    # statement's level that closes it (kept: `end if;`, `}`), one that carries it on (`else`,
    # `begin`, `case`, a `{` on its own line), and one after which the next line at that level
    # is still the same construct (a decorator). Regular expressions, case-insensitive, matched
    # at the line's code; "": none.
    # (The C family's keywords are matched case-sensitively: `(?-i:...)`.)
    block_close: str = r"[}\])]"
    block_goes_on: str = r"(?-i:(\}\s*)?(else|catch|finally|where)\b|case\b|default\s*:)|\{"
    block_prelude: str = r"(?-i:@\w|#\[|template\b)"
    block_strings: tuple[str, ...] = ()  # quotes of strings whose lines are not statements

    def statement_rule(self) -> dict[str, Any]:
        """A block that ends with its first statement, by this language's patterns: the
        keywords of inference.stops.StopRule."""
        return {
            "statement": True,
            "closes": self.block_close,
            "goes_on": self.block_goes_on,
            "opens": self.block_open,
            "preludes": self.block_prelude,
            "comment": self.line_comment,
            "strings": self.block_strings,
        }

    def statement_rule_sha256(self) -> str:
        """The digest of those patterns, recorded in an audit line: replay says when the rule
        it applies is not the one the line was made with. Computed once per language."""
        return _rule_sha256(self)

    def grammar(self) -> TSLanguage:
        return _grammar(self.module, self.function)

    def parser(self) -> Parser:
        return Parser(self.grammar())

    def query(self, kind: QueryKind) -> Query:
        """The compiled `definitions`, `imports` or `symbols` (both) query; compiled once per
        process."""
        if kind not in QUERY_KINDS:
            raise ValueError(f"unknown query kind {kind!r}: expected one of {QUERY_KINDS}")
        return _query(self.module, self.function, self.queries or self.name, kind)


# Languages whose files define names for each other (a C++ file uses C headers, a TSX file
# TypeScript's): context is looked for across a family.
FAMILIES = {
    "cpp": "c",
    "typescriptreact": "typescript",
    "javascript": "typescript",
    "systemverilog": "verilog",
}


def family(language: str) -> str:
    """The family a language's files share definitions with (its own name for most)."""
    return FAMILIES.get(language, language)


@cache
def _rule_sha256(language: Language) -> str:
    rule = json.dumps(language.statement_rule(), sort_keys=True).encode()
    return hashlib.sha256(rule).hexdigest()


@cache
def _grammar(module: str, function: str) -> TSLanguage:
    return TSLanguage(getattr(importlib.import_module(module), function)())


@cache
def _query(module: str, function: str, stem: str, kind: str) -> Query:
    # Read through importlib.resources so the .scm files are found in an installed wheel too.
    kinds = ("definitions", "imports") if kind == "symbols" else (kind,)
    folder = files("context") / "queries"
    text = "\n".join((folder / f"{stem}-{k}.scm").read_text(encoding="utf-8") for k in kinds)
    return Query(_grammar(module, function), text)


VERILOG_END = r"end(module|case|function|task|generate|package|class|interface|program)?\b"
LANGUAGES: tuple[Language, ...] = (
    Language(
        name="ada",
        suffixes=(".ads", ".adb", ".ada"),
        module="tree_sitter_ada",
        line_comment="--",
        block_open=r"\b(is|begin|then|else|loop|declare|record|do|private|select)$",
        block_close=r"end\b|[)\]]",
        block_goes_on=r"(else|elsif|exception|when|begin|is|then|loop|do|or|private|select)\b",
        block_prelude=r"generic\b",
    ),
    Language(
        name="vhdl",
        suffixes=(".vhd", ".vhdl"),
        module="tree_sitter_vhdl",
        line_comment="--",
        block_open=r"\b(is|begin|then|else|generate|loop)$",
        block_close=r"end\b|[)\]]",
        block_goes_on=r"(else|elsif|when|begin|is|then|generate|loop)\b",
        block_prelude="",
    ),
    Language(
        name="verilog",
        suffixes=(".v", ".vh"),
        module="tree_sitter_verilog",
        block_open=r"(\bbegin|\))$",
        block_close=VERILOG_END + r"|[)\]}]",
        block_goes_on=r"(end\s+)?(else|begin)\b",
        block_prelude="",
    ),
    Language(
        name="systemverilog",
        suffixes=(".sv", ".svh"),
        module="tree_sitter_systemverilog",
        block_open=r"(\bbegin|\))$",
        block_close=VERILOG_END + r"|[)\]}]",
        block_goes_on=r"(end\s+)?(else|begin)\b",
        block_prelude="",
    ),
    Language(name="c", suffixes=(".c", ".h"), module="tree_sitter_c"),
    Language(
        name="cpp",
        suffixes=(".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx"),
        module="tree_sitter_cpp",
    ),
    Language(
        name="python",
        suffixes=(".py", ".pyi"),
        module="tree_sitter_python",
        line_comment="#",
        block_open=r":$",
        block_close=r"[)\]}]",  # a bracket closed; else a block ends where its indentation does
        block_goes_on=r"(?-i:(else|elif|except|finally|case)\b)",
        block_prelude=r"@",
        block_strings=('"""', "'''"),
    ),
    Language(name="rust", suffixes=(".rs",), module="tree_sitter_rust"),
    Language(name="go", suffixes=(".go",), module="tree_sitter_go"),
    Language(name="java", suffixes=(".java",), module="tree_sitter_java"),
    Language(
        name="javascript", suffixes=(".js", ".mjs", ".cjs", ".jsx"), module="tree_sitter_javascript"
    ),
    Language(
        name="typescript",
        suffixes=(".ts", ".mts", ".cts"),
        module="tree_sitter_typescript",
        function="language_typescript",
    ),
    Language(
        name="typescriptreact",
        suffixes=(".tsx",),
        module="tree_sitter_typescript",
        function="language_tsx",
        queries="typescript",  # TSX extends the TypeScript grammar: the same queries compile
    ),
)

_BY_SUFFIX = {s: lang for lang in LANGUAGES for s in lang.suffixes}
_BY_NAME = {lang.name: lang for lang in LANGUAGES}


def for_path(path: str | PurePath) -> Language | None:
    return _BY_SUFFIX.get(PurePath(path).suffix.lower())


def for_document(path: str | PurePath, language_id: str | None = None) -> Language | None:
    """The editor's language id first (it knows what the user chose), the suffix otherwise."""
    if language_id and language_id in _BY_NAME:
        return _BY_NAME[language_id]
    return for_path(path)
