"""Count vectors of a k-subsample and their dense ranking.

A count vector is how many of `k` agents sit in each of `L` local states. There
are C(k+L-1, L-1) of them; a Q table over them is indexed by a rank in
[0, C(k+L-1, L-1)), never by a dense (k+1)^L array.

The rank uses stars and bars: the L-1 bar positions b_j = c_0 + ... + c_j + j
form a strictly increasing (L-1)-subset of {0, ..., k+L-2}, ranked by the
combinatorial number system, rank = sum_j C(b_j, j+1).
"""

from __future__ import annotations

from functools import cache
from math import comb

import numpy as np

from altmarl_ros.marl.budget import (
    RANK_LIMIT,
    MemoryBudgetError,
    all_vectors_peak_bytes,
    binomial_table_bytes,
    check,
    format_count,
)
from altmarl_ros.marl.errors import GameValidationError

MAX_COUNT_VECTORS = 2**61  # ranks are int64 and the binomial table is exact below this (see _binomial_table)


def num_count_vectors(k: int, num_states: int) -> int:
    """How many count vectors of `k` agents over `num_states` states exist."""
    return comb(k + num_states - 1, num_states - 1)


def num_local_states_for(k: int, width: int) -> int:
    """The number of local states L with C(k+L-1, L-1) == width (raise if none)."""
    for L in range(1, 256):
        size = num_count_vectors(k, L)
        if size == width:
            return L
        if size > width:
            break
    raise GameValidationError(f"{width} is not a number of count vectors of k={k} agents for any number of states")


def _binomial_table(top: int, width: int) -> np.ndarray:
    """table[n, r] = C(n, r) for n <= top, r <= width (int64), exact below 2^61, entries past 2^62 clipped.

    Column r is the running sum of column r-1 (C(n, r) = sum_{j<n} C(j, r-1)), so the table costs
    `width` vectorised sums instead of (top+1)(width+1) big-integer binomials. A float64 running sum
    shows where the int64 one would pass 2^62 (its relative error is below 1e-9, so where it is below,
    the int64 sum has not wrapped); those entries are clipped to 2^62. No lookup reaches them: every
    rank is below the number of count vectors, which CountIndex keeps below 2^61.
    """
    table = np.zeros((top + 1, width + 1), dtype=np.int64)
    table[:, 0] = 1
    for r in range(1, width + 1):
        previous = table[:-1, r - 1]
        exact = np.cumsum(previous)
        approx = np.cumsum(previous, dtype=np.float64)
        table[1:, r] = np.where(approx < float(RANK_LIMIT), exact, RANK_LIMIT)
    return table


class CountIndex:
    """Rank count vectors of `k` agents over `num_states` states.

    Vectorised: `rank` takes any array whose last axis is a count vector.
    """

    def __init__(self, k: int, num_states: int) -> None:
        if k < 1:
            raise GameValidationError(f"k must be >= 1, got k={k}")
        if num_states < 1:
            raise GameValidationError(f"num_states must be >= 1, got {num_states}")
        self.k = int(k)
        self.num_states = int(num_states)
        self.size = num_count_vectors(self.k, self.num_states)
        if self.size > MAX_COUNT_VECTORS:
            raise MemoryBudgetError(
                f"k={self.k} agents over {self.num_states} local states have {format_count(self.size)} count "
                f"vectors: no table over them fits in memory, and their ranks overflow 64 bits; reduce k or the "
                "number of local states (zones)")
        check(binomial_table_bytes(self.k, self.num_states),
              f"the count-vector index of k={self.k} agents over {self.num_states} local states",
              "reduce k or the number of local states (zones)")
        self._binom = _binomial_table(self.k + self.num_states, self.num_states)
        self._all: np.ndarray | None = None

    @property
    def binomial_table(self) -> np.ndarray:
        """table[t, r] = C(t, r) for t <= k + num_states, r <= num_states (int64, read-only use)."""
        return self._binom

    def binomial(self, top: np.ndarray, r: int) -> np.ndarray:
        """C(top, r) for an array of `top` values (table lookup)."""
        return self._binom[top, r]

    def rank(self, counts: np.ndarray) -> np.ndarray:
        """Rank of each count vector along the last axis (int64)."""
        counts = np.asarray(counts)
        if counts.shape[-1] != self.num_states:
            raise GameValidationError(
                f"count vectors must have {self.num_states} entries on the last axis, "
                f"got shape {counts.shape}"
            )
        if self.num_states == 1:
            return np.zeros(counts.shape[:-1], dtype=np.int64)
        bars = np.cumsum(counts[..., :-1], axis=-1) + np.arange(self.num_states - 1)
        ranks = np.zeros(counts.shape[:-1], dtype=np.int64)
        for j in range(self.num_states - 1):
            ranks += self.binomial(bars[..., j], j + 1)
        return ranks

    def all_vectors(self) -> np.ndarray:
        """Every count vector, row `r` holding the vector of rank `r` (int32)."""
        if self._all is None:
            check(all_vectors_peak_bytes(self.k, self.num_states),
                  f"listing the {format_count(self.size)} count vectors of k={self.k} agents over "
                  f"{self.num_states} local states", "reduce k or the number of local states (zones)")
            vectors = _enumerate_compositions(self.k, self.num_states)
            order = np.empty(len(vectors), dtype=np.int64)
            order[self.rank(vectors)] = np.arange(len(vectors))
            self._all = vectors[order]
        return self._all

    def check(self, counts: np.ndarray) -> np.ndarray:
        """Validate count vectors (right length, non-negative, sum k) and return them as int64."""
        counts = np.asarray(counts)
        if counts.shape[-1:] != (self.num_states,):
            raise GameValidationError(
                f"a count vector needs {self.num_states} entries (one per local state), "
                f"got shape {counts.shape}"
            )
        if not np.issubdtype(counts.dtype, np.integer):
            if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
                raise GameValidationError(f"count vectors must be whole numbers, got {counts}")
            counts = counts.astype(np.int64)
        if np.any(counts < 0):
            raise GameValidationError(f"count vectors must be non-negative, got {counts}")
        totals = counts.sum(axis=-1)
        if np.any(totals != self.k):
            raise GameValidationError(
                f"a count vector of the k-subsample must sum to k={self.k}, got sums {np.unique(totals)}"
            )
        return counts.astype(np.int64)


@cache
def _enumerate_compositions(total: int, parts: int) -> np.ndarray:
    """All non-negative integer vectors of length `parts` summing to `total` (cached, read-only)."""
    if parts == 1:
        out = np.array([[total]], dtype=np.int32)
    else:
        blocks = []
        for first in range(total, -1, -1):
            rest = _enumerate_compositions(total - first, parts - 1)
            head = np.full((len(rest), 1), first, dtype=np.int32)
            blocks.append(np.concatenate([head, rest], axis=1))
        out = np.concatenate(blocks, axis=0)
    out.setflags(write=False)
    return out
