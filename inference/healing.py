"""Token healing: the prompt ends on a whole token, and the generation spells what was cut.

A prompt that ends inside what would be one token puts the model where it has hardly been. The
default model's tokenizer merges a newline with the indentation after it (`"\\n     "` is one
token): a prompt cut after the newline, with the indentation forced afterwards, ends on a lone
`"\\n"`, which code almost never holds; so do trailing spaces, half a name, half an operator. The
prompt is backed up over its last token (and the blanks typed before the cursor), and the
generation's first tokens are restricted to those that spell that text again: the model chooses
the token it would have chosen had the text gone on.
"""

from __future__ import annotations

from collections.abc import Callable

DIGITS = "0123456789"
# Blanks that tokenizers write as tokens of their own: a space, a tab, a vertical tab, a form
# feed and a no-break space (refused a space, the model wrote no-break spaces: the user saw
# nothing). Other white space is written in pieces of UTF-8 no token spells whole.
BLANKS = " \t\x0b\x0c\xa0"
# The most text backed up over: one token is rarely longer (a long run of blanks may be).
MAX_HEALED_CHARS = 64


def heal(prefix: str, typed_blanks: str, last_token: Callable[[str], str]) -> tuple[str, str]:
    """(the prefix backed up over its last token, the text the generation must start with: that
    token's text and `typed_blanks`, the blanks typed before the cursor that `prefix` no longer
    holds). `last_token(text)` is the model tokenizer's last token of `text`, "" where it is a
    special token or no whole characters: then only the blanks are forced."""
    if not prefix:
        return prefix, typed_blanks
    tail = last_token(prefix)
    if not tail or len(tail) > MAX_HEALED_CHARS or len(tail) >= len(prefix):
        return prefix, typed_blanks  # (a prompt of one token: nothing to go on without it)
    if not prefix.endswith(tail):
        return prefix, typed_blanks
    return prefix[: len(prefix) - len(tail)], tail + typed_blanks


def refused_start(line_before: str, line_after: str, line_above: str = "") -> str:
    """What the suggestion may not start with, where a line of code is due: on an empty line
    (nothing after the cursor) a line break, and once its indentation is typed a blank too
    (BLANKS: the line would be indented further than the user chose). Elsewhere nothing: after
    code, the line may be complete as it is, and "nothing" is the right answer there.

    And there a digit, unless `line_above` (the nearest line above with more than blanks)
    starts with one too: after an indentation a small model is drawn to a numbered list
    (`1.  This package is ...`, measured on 180 line starts of the quality benchmark: 13 such
    answers), while code starts a line with a number in a table of numbers, line after line."""
    if line_after.strip() or line_before.strip():
        return ""
    digits = "" if line_above.lstrip()[:1].isdigit() else DIGITS
    return (BLANKS + "\r\n" if line_before else "\r\n") + digits
