"""Scores and paired statistics for bench/quality.py, with no library beyond numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_ROUNDS = 10_000


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one character) that turn `a` into `b`."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def edit_similarity(got: str, want: str) -> float:
    """1 - Levenshtein distance / the longer length (1.0 for two empty strings)."""
    longest = max(len(got), len(want))
    return 1.0 - levenshtein(got, want) / longest if longest else 1.0


def sign_test(won: int, lost: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven between `won`
    and `lost` if either side were equally likely to win each untied position."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(won, lost) + 1))
    return min(1.0, 2 * tail / 2**n)


def bootstrap_interval(
    a: Sequence[bool], b: Sequence[bool], seed: int, rounds: int = BOOTSTRAP_ROUNDS
) -> tuple[float, float]:
    """A 95 % percentile interval of mean(a) - mean(b) over positions resampled in pairs,
    in percentage points."""
    if not a:
        return (0.0, 0.0)
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low) * 100, float(high) * 100


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile (`p` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
