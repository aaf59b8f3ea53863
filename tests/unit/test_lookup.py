"""Prompt-lookup drafts: what followed the last tokens where they appeared before."""

from __future__ import annotations

from inference.engine import lookup


def test_a_draft_is_what_followed_the_latest_occurrence_in_the_sequence() -> None:
    seq = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 0, 2, 3]
    # [2, 3] last appeared before the end at index 7: 7, 8 followed it.
    assert lookup(seq, 2) == [7, 8]
    assert lookup([4, 5, 6], 3) == []  # nowhere before


def test_the_last_generation_is_looked_in_first() -> None:
    # After a keystroke: the tokens the last suggestion wrote are a draft source of their own,
    # tried before the sequence, for the longest match first.
    seq = [10, 20, 30, 40, 50, 10, 20, 30]
    assert lookup(seq, 2) == [40, 50]
    assert lookup(seq, 2, earlier=[7, 10, 20, 30, 60, 61]) == [60, 61]
    # A 3-token match in the sequence wins over a 2-token one in the last generation.
    assert lookup(seq, 2, earlier=[20, 30, 99]) == [40, 50]
    # Where the last generation ends with the match, nothing follows it there.
    assert lookup(seq, 2, earlier=[10, 20, 30]) == [40, 50]
