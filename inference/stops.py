"""Where a completion ends: the end of the line, or the end of the enclosing block.

Pure text rules, checked after every decoding step so that generation stops as soon as the
suggestion is complete instead of running to the token limit.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRule:
    multiline: bool
    base_indent: int = 0  # a line indented less than this has left the block the cursor is in
    stop_texts: tuple[str, ...] = ()  # the format's end markers (EOS spelled as text, file seps)
    # Prose or a whole rewrite (hover, code actions): no line or block rule, only the stop texts,
    # EOS and the budgets end it.
    prose: bool = False
    # A block that ends with its first statement: the first line, with the lines below it that
    # are deeper (its body) and those at its level that carry the construct on (`goes_on`:
    # `else`, `begin`, `case`, a `{` alone) or close it (`closes`: `end if;`, `}`, kept), or
    # that follow a line that leads into the next (`preludes`: a decorator, Ada's `generic`).
    # A closing line that opens a body again (`opens`, matched at its end without its
    # `comment`: `) -> int:`) carries it on too. Regular expressions, case-insensitive, matched
    # at a line's code (the language's: context.languages). Off: the block goes on to the end of
    # the block the cursor is in.
    statement: bool = False
    closes: str = ""
    goes_on: str = ""
    opens: str = ""
    preludes: str = ""
    comment: str = ""
    strings: tuple[str, ...] = ()  # the quotes of strings whose lines are not statements
    # A piece written this many times in a row within a line is a loop, cut after its first
    # copy (`_piece_loop`; the server sets PIECE_REPEATS). 0: off, as for lines of the audit
    # made before the rule.
    piece_repeats: int = 0


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def wants_multiline(line_before_cursor: str, line_after_cursor: str) -> bool:
    """A cursor alone on its line asks for a block; a cursor inside a line asks for its rest."""
    return not line_before_cursor.strip() and not line_after_cursor.strip()


def block_indent(line_before_cursor: str) -> int:
    """The indentation of the block the cursor is in, judged from its own line."""
    if not line_before_cursor.strip():
        return len(line_before_cursor)
    return indent_of(line_before_cursor)


# Blanks this long with nothing after them are not code being written: the model is stuck.
# Within a line (after code), or as a line's indentation (deep VHDL port maps go past 48).
WHITESPACE_RUN = 48
INDENT_RUN = 160
# A line written this many times in a row (the same text, indentation included) is a loop.
REPEATS = 3
# Within a line, a piece written this many times in a row is a loop where it is glued into one
# word (`Tcp_Tcp_Tcp_Tcp_`), or where it ends by opening a call, the same call nested four deep
# (`f(f(f(f(`: cut at the fourth opening, even where the calls would close later, as
# `dirname(dirname(dirname(dirname(p))))` would). Runs of a data table (`FALSE, FALSE, ...`,
# `0xe6, 0xe6, ...`), calls closed in a row (`POINTER(BIGNUM), POINTER(BIGNUM), ...`), nested
# aggregates and types (`(others => (others => ...`, `list[list[list[list[int]]]]`), a number's
# digits (`16#FFFF_FFFF_FFFF_FFFF#`, `32'h5A5A_5A5A`), test data in a double-quoted string
# (`"JefeJefeJefeJefe"`) and words that repeat a part three times (`Long_Long_Long_Integer`) are
# code. Of the 2.1 million lines of the quality benchmark's corpus (no Verilog), 13 hold such a
# run: Python test data in strings and a comment, and one name written to be wrong.
PIECE_REPEATS = 4
_HEX = re.compile(r"[0-9A-Fa-f_]+")
_QUOTE = re.compile(r'(?<!\\)(?:\\\\)*"')  # a quote after an even run of backslashes
_CALLS = re.compile(r"\w\s*\(")
# What a loop is judged with of the line before the generation: its last characters (a run
# that started further back is still four copies here), and whether a string is open.
HEAD_CHARS = 512


@functools.lru_cache(maxsize=4)
def _loops(repeats: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A word's piece, and a piece that ends by opening a call, written `repeats` times in a
    row."""
    more = f"{{{repeats - 1},}}"  # `{3,}`: the copies after the first
    glued = re.compile(r"([A-Za-z0-9_]{2,12}?)\1" + more)
    # (the call in the pattern: `print(f(f(f(f(` is found as `f(`, not as `(f`, which is
    # no call and would hide the run from the next match)
    return glued, re.compile(r"(.{0,30}?\w\s*\()\1" + more)


def cut_forced(
    text: str, forced: str, rule: StopRule, line_before: str = ""
) -> tuple[str, str | None]:
    """`cut` for a generation that must start with `forced` (the text healed off the prompt's
    end, e.g. a newline and the cursor line's indentation): the rules judge what follows it, so a
    forced newline does not end a one-line suggestion before it began. While `text` is still
    spelling `forced`, go on. `line_before`: the cursor line's text before the cursor, where
    what follows `forced` starts (a string or a number opened there, for `_piece_loop`)."""
    if not text.startswith(forced):
        return text, None
    kept, why = cut(text[len(forced) :], rule, line_before)
    return forced + kept, why


def cut(text: str, rule: StopRule, head: str = "") -> tuple[str, str | None]:
    """The part of `text` to keep and why generation stops, or (text, None) to go on. `head`:
    what stands before `text` on its first line.

    When several rules apply, the earliest cut wins.
    """
    if not rule.prose and (stuck := _stuck(text, rule.piece_repeats, head)) is not None:
        kept, why = cut(text[:stuck], rule, head)
        return kept, why or "repetition"
    hits = [at for marker in rule.stop_texts if (at := text.find(marker)) >= 0]
    if hits:
        if rule.prose:
            return text[: min(hits)], "stop_text"
        kept, why = _cut_lines(text[: min(hits)], rule)
        return kept, why or "stop_text"
    if rule.prose:
        return text, None
    return _cut_lines(text, rule)


def _cut_lines(text: str, rule: StopRule) -> tuple[str, str | None]:
    if not rule.multiline:
        at = text.find("\n")
        if at >= 0:
            return text[:at], "end_of_line"
        return text, None
    lines = text.split("\n")
    blank_run = 0
    deeper = False  # a line below the first was indented deeper than the block (its body)
    # The last line at the block's level leads into the next (a decorator, `generic`): the
    # statement is the unit it leads into, its brackets closed on lines of their own too.
    leading = rule.statement and _matches(rule.preludes, lines[0].strip())
    # A statement that starts as a construct goes on (`when`, `case`, `else`): the next such
    # line at its level is the next statement, not more of this one.
    label = rule.statement and _matches(rule.goes_on, lines[0].strip())
    for i, line in enumerate(lines[1:], start=1):
        complete = i < len(lines) - 1
        if not line.strip():
            if complete:
                blank_run += 1
                if blank_run == 2:
                    return "\n".join(lines[: i - 1]).rstrip(), "end_of_block"
            continue
        blank_run = 0
        if rule.statement and _in_string(lines[:i], rule.strings):
            continue  # a docstring's lines need not be indented
        indent = indent_of(line)
        if indent < rule.base_indent:
            return "\n".join(lines[:i]).rstrip(), "end_of_block"
        if not rule.statement:
            continue
        if indent > rule.base_indent:
            deeper = True
            continue
        code = line.strip()
        if not complete and not _first_word_written(code):
            return text, None  # `el` may yet be `else`: wait for the word
        if leading:
            if not _matches(rule.closes, code):  # (the prelude's closing bracket: still it)
                leading, deeper = _matches(rule.preludes, code), False
            continue
        if not label and _matches(rule.goes_on, code):
            continue  # `else`, `begin`, `{`: the same construct
        if deeper and _matches(rule.closes, code):
            if not complete:
                return text, None  # the closing line, kept whole
            if rule.opens and re.search(rule.opens, _code(code, rule.comment), re.I):
                continue  # `) -> int:`, `) is`: the construct goes on
            # `}` then `else` on the next line (Allman, GNU): see the next line's first word.
            after = lines[i + 1]
            if i + 1 == len(lines) - 1 and not _first_word_written(after.strip()):
                return text, None
            if indent_of(after) == rule.base_indent and _matches(rule.goes_on, after.strip()):
                continue
            return "\n".join(lines[: i + 1]).rstrip(), "end_of_statement"
        return "\n".join(lines[:i]).rstrip(), "end_of_statement"
    return text, None


def _matches(pattern: str, code: str) -> bool:
    return bool(pattern) and re.match(pattern, code, re.IGNORECASE) is not None


def _code(line: str, comment: str) -> str:
    """A line without its trailing comment (roughly: from the comment marker on)."""
    return (line.split(comment, 1)[0] if comment else line).rstrip()


def _in_string(lines: list[str], quotes: tuple[str, ...]) -> bool:
    """Whether what follows these lines is inside a string of one of these `quotes` (Python's
    triple quotes), opened on them and not closed."""
    if not quotes:  # (checked after every decoding step: no work for most languages)
        return False
    head = "\n".join(lines)
    return any(head.count(q) % 2 == 1 for q in quotes)


def _first_word_written(code: str) -> bool:
    """Whether a line's first word is whole: something that is not part of a word follows it, or
    the line does not start with one (`}`, `(`)."""
    return re.match(r"\w*\W", code) is not None


def _stuck(text: str, piece_repeats: int, head: str = "") -> int | None:
    """Where a generation that went round in circles should have stopped: before a run of
    WHITESPACE_RUN blanks with nothing else, after the first of REPEATS identical complete
    lines (blank lines aside), or after the first copy of a piece that loops within a line
    (`_piece_loop`; `head` comes before the first line). None while it is still writing
    something."""
    body = text.rstrip()  # (every blank: a model refused spaces may write no-break spaces)
    run = text[len(body) :]
    last = run.rsplit("\n", 1)[-1]
    if ("\n" not in run and len(run) >= WHITESPACE_RUN) or len(last) >= INDENT_RUN:
        return len(body)
    lines = text.split("\n")
    complete = lines[:-1]
    for i in range(REPEATS - 1, len(complete)):
        same = complete[i - REPEATS + 1 : i + 1]
        if same[0].strip() and all(line == same[0] for line in same):
            return sum(len(line) + 1 for line in complete[: i - REPEATS + 2]) - 1
    if not piece_repeats:
        return None
    head = _head_tail(head) if len(head) > HEAD_CHARS else head
    # Every line, not only the last: a step (or a team server's chunk) may bring several.
    at = 0
    for i, line in enumerate(lines):
        start = head if i == 0 else ""
        if (end := _piece_loop(start + line, piece_repeats, len(start))) is not None:
            return at + end
        at += len(line) + 1
    return None


def _piece_loop(line: str, repeats: int = PIECE_REPEATS, written: int = 0) -> int | None:
    """Where a piece written `repeats` times in a row in `line` (a loop, as PIECE_REPEATS's
    comment says) should have stopped: after its first copy, as an offset into what follows the
    line's first `written` characters (those were there before the generation: a run must reach
    past them, and a run begun there ends the generation at once, at 0). None if there is no
    such run."""
    glued, nested = _loops(repeats)
    quotes: list[int] | None = None  # found at the first match, once a line (most have none)
    for m in glued.finditer(line):
        piece = m.group(1)
        if m.end() <= written or len(set(piece)) == 1:
            continue  # before the generation; `____`, `xxxx`
        quotes = _quote_ends(line) if quotes is None else quotes
        if _inside(quotes, m.start()):
            continue  # test data (`"cdcdcdcd"`)
        if _HEX.fullmatch(piece) and _in_number(line, m.start()):
            continue
        # The first copy, ended where a part of the word ends (`Tcp_Tcp_…`: `Tcp`, not `Tcp_`;
        # `p_Tcp_Tcp_…`, found as `p_Tc` repeated: `p_Tcp`); without one, where the loop was
        # found to start again (`lueValueValue…`: `lueVa`).
        size = len(piece)
        part = line.find("_", m.start() + size - 1, m.start() + 2 * size - 1)
        return max((part if part >= 0 else m.end(1)) - written, 0)
    if len(_CALLS.findall(line)) < repeats:
        return None  # (checked after every decoding step: most lines have no such run)
    for m in nested.finditer(line):
        piece = m.group(1)
        opened = sum(piece.count(c) for c in "([{") - sum(piece.count(c) for c in ")]}")
        if m.end() <= written or opened <= 0:
            continue
        quotes = _quote_ends(line) if quotes is None else quotes
        if not _inside(quotes, m.start()):
            return max(m.end(1) - written, 0)
    return None


@functools.lru_cache(maxsize=8)
def _head_tail(head: str) -> str:
    """A long line's last HEAD_CHARS characters, after a quote if a string is open before them
    (a generation's every step judges its first line with the same head: counted once)."""
    cut = len(head) - HEAD_CHARS
    while cut > 0 and head[cut - 1] == "\\":  # (not between a backslash and what it escapes)
        cut -= 1
    return ('"' if _inside(_quote_ends(head), cut) else "") + head[cut:]


def _quote_ends(line: str) -> list[int]:
    """Where each double quote that opens or closes a string on `line` ends (`\\"` escapes a
    quote; Ada's and VHDL's `""` come in pairs)."""
    return [m.end() for m in _QUOTE.finditer(line)]


def _inside(quote_ends: list[int], at: int) -> bool:
    """Whether `at` is inside a double-quoted string, by the quotes that end at or before it."""
    return bisect.bisect_right(quote_ends, at) % 2 == 1


def _in_number(line: str, at: int) -> bool:
    """Whether the word around `at` is a number's digits: it starts with a digit (`0xFFFF_FFFF`),
    follows a `#` (Ada's `16#FFFF_FFFF_FFFF_FFFF#`), or follows a `'` with a base (Verilog's
    `32'h5A5A_5A5A`, `8'b1010_1010`)."""
    start = at
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] == "_"):
        start -= 1
    if line[start - 1 : start] == "'" and re.match(r"[sS]?[bBoOdDhH]", line[start:]):
        return True
    return line[start : start + 1].isdigit() or line[start - 1 : start] == "#"
