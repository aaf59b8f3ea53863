"""What the model sees for one completion: the text around the cursor, cut to a budget."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The prefix's cut moves in steps of this share of its budget (`_tail_lines`).
PREFIX_STEP = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class Snippet:
    """Context from another file; recorded in the audit line as a source."""

    path: str
    start_line: int
    end_line: int
    text: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    path: str
    language: str
    prefix: str  # text before the cursor, without the cursor line's trailing indentation
    suffix: str  # text after the cursor
    trailing_ws: (
        str  # whitespace cut from the end of the prefix; the model writes it, we take it off
    )
    line_before: str  # the cursor line up to the cursor
    line_after: str  # the cursor line from the cursor
    line_above: str = ""  # the nearest line above the cursor's with more than blanks
    line_below: str = ""  # the nearest such line below it ("": none, the end of the file)
    snippets: tuple[Snippet, ...] = ()


def _tail_lines(text: str, limit: int) -> str:
    """The end of `text`, at most `limit` characters, starting at a line start where possible.

    The cut is made at a multiple of `PREFIX_STEP` of `limit` from the text's start, not at
    `limit` from its end: it stays where it is while the text grows by less than that (the user
    types a line, or a few), and so does the prompt's start, whose key/values the engine keeps
    from the request before. Cut at `limit` from the end, it moved to the next line start with
    nearly every new line and the whole file's part was read again. The text kept is between
    `limit` less a step and `limit` long, then cut to its first line start, or, where that holds
    no line start, started at the start of the line it falls in if that fits. (An oversized
    document's text is a window whose start moves in steps of its own: the cut moves with it
    when the window's start moves.)"""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    step = max(1, int(limit * PREFIX_STEP))
    start = -(-(len(text) - limit) // step) * step  # rounded up: at most `limit` kept
    cut = text[start:]
    if text[start - 1] == "\n":
        return cut
    nl = cut.find("\n")
    if 0 <= nl < len(cut) - 1:
        return cut[nl + 1 :]
    # A line longer than what is left after the step: start at its own start if that fits.
    back = text.rfind("\n", len(text) - limit - 1, start)
    return text[back + 1 :] if back >= 0 else cut


def _head_lines(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    nl = cut.rfind("\n")
    return cut[: nl + 1] if nl > 0 else cut


def build_prompt(
    text: str,
    at: int,
    *,
    path: str,
    language: str,
    max_prefix_chars: int,
    max_suffix_chars: int,
) -> Prompt:
    """The prompt for a cursor at string offset `at` in `text` (`offset_at` turns an LSP
    position into one)."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = len(text) if line_end < 0 else line_end
    line_before = text[line_start:at]
    line_after = text[at:line_end].rstrip("\r")
    prefix = text[:at]
    head = text[:line_start].rstrip()  # up to the end of the nearest line with more than blanks
    above = head[head.rfind("\n") + 1 :]
    below, pos = "", line_end
    while pos < len(text):
        end = text.find("\n", pos + 1)
        end = len(text) if end < 0 else end
        if (line := text[pos + 1 : end].rstrip("\r")).strip():
            below = line
            break
        pos = end
    # A prompt that ends in spaces makes models emit an odd extra space (the space belongs to the
    # next token): let the model write that whitespace itself and take it off the suggestion.
    trailing_ws = line_before[len(line_before.rstrip(" \t")) :]
    prefix = prefix[: len(prefix) - len(trailing_ws)]
    return Prompt(
        path=path,
        language=language,
        prefix=_tail_lines(prefix, max_prefix_chars),
        suffix=_head_lines(text[at:], max_suffix_chars),
        trailing_ws=trailing_ws,
        line_before=line_before,
        line_after=line_after,
        line_above=above,
        line_below=below,
    )


def strip_forced(generated: str, forced: str) -> str:
    """Take the text the generation was made to start with (what was cut from the prompt's end:
    the blanks typed before the cursor, the last token healed) off a suggestion. A generation
    that stopped before spelling it all suggests nothing, but for blanks alone, as before healing
    backed up over more than the typed blanks."""
    if not forced:
        return generated
    if generated.startswith(forced):
        return generated[len(forced) :]
    return generated.lstrip(" \t") if not forced.strip(" \t") else ""


def suggestion_text(generated: str, forced: str) -> str:
    """What the editor shows for a generation: without the forced start (the text already
    before the cursor) and without trailing blanks. `audit replay` applies the same, so it
    compares like with like."""
    return strip_forced(generated, forced).rstrip()


def wants_block(prompt: Prompt, block_open: str, line_comment: str) -> bool:
    """A block, not one line, where the cursor is alone on its line and either the line above
    opens a block (`block_open`, the language's pattern: Ada `is`, `begin`, `then`, `loop`;
    VHDL `generate`; Python `:`; C `{` ...) or the rest of the block is missing (the next line
    with text is less indented than the cursor, or there is none). Elsewhere one line: a block
    at every line start kept the user waiting for lines they did not want."""
    if prompt.line_before.strip() or prompt.line_after.strip():
        return False
    above = prompt.line_above
    if line_comment and line_comment in above:
        above = above[: above.index(line_comment)]
    if re.search(block_open, above.rstrip(), re.IGNORECASE):
        return True
    below = prompt.line_below
    return not below or len(below) - len(below.lstrip(" \t")) < len(prompt.line_before)
