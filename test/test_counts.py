"""CountIndex: the dense ranking of count vectors of a k-subsample (altmarl_ros/marl/counts.py)."""

from itertools import combinations_with_replacement
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altmarl_ros.marl.counts import CountIndex, num_count_vectors, num_local_states_for
from altmarl_ros.marl.errors import GameValidationError

SIZES = [(1, 1), (1, 5), (3, 1), (2, 2), (4, 3), (3, 5), (6, 4), (10, 2), (5, 5), (12, 3)]


def brute_force_vectors(k, num_states):
    """Every count vector of k agents over num_states states, built independently of the package."""
    out = set()
    for combo in combinations_with_replacement(range(num_states), k):
        out.add(tuple(np.bincount(combo, minlength=num_states)))
    return out


@pytest.mark.parametrize("k,num_states", SIZES)
def test_size_is_stars_and_bars(k, num_states):
    index = CountIndex(k, num_states)
    assert index.size == comb(k + num_states - 1, num_states - 1)
    assert num_count_vectors(k, num_states) == index.size
    assert len(brute_force_vectors(k, num_states)) == index.size


@pytest.mark.parametrize("k,num_states", SIZES)
def test_rank_is_a_bijection_onto_range(k, num_states):
    index = CountIndex(k, num_states)
    vectors = np.array(sorted(brute_force_vectors(k, num_states)))
    ranks = index.rank(vectors)
    assert ranks.dtype == np.int64
    # a bijection onto [0, size): every rank hit exactly once
    assert sorted(ranks.tolist()) == list(range(index.size))


@pytest.mark.parametrize("k,num_states", SIZES)
def test_all_vectors_row_r_has_rank_r(k, num_states):
    index = CountIndex(k, num_states)
    vectors = index.all_vectors()
    assert vectors.shape == (index.size, num_states)
    assert np.all(vectors >= 0)
    assert np.all(vectors.sum(axis=1) == k)
    np.testing.assert_array_equal(index.rank(vectors), np.arange(index.size))
    assert {tuple(v) for v in vectors.tolist()} == brute_force_vectors(k, num_states)


def test_rank_is_vectorised_over_leading_axes():
    index = CountIndex(4, 3)
    vectors = index.all_vectors()[:6].reshape(2, 3, 3)
    np.testing.assert_array_equal(index.rank(vectors), np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("k,num_states", [(3, 5), (6, 2), (1, 7)])
def test_num_local_states_for_inverts_size(k, num_states):
    assert num_local_states_for(k, num_count_vectors(k, num_states)) == num_states


def test_num_local_states_for_rejects_impossible_width():
    # C(2+L-1, L-1) for L = 1, 2, 3, ... is 1, 3, 6, 10: 7 is none of them
    with pytest.raises(GameValidationError, match="7"):
        num_local_states_for(2, 7)


@pytest.mark.parametrize("bad, field", [
    (np.array([1, 1, 1, 0]), "entries"),          # wrong length (4 instead of 5)
    (np.array([1, 1, 1, 0, 0, 0]), "entries"),    # wrong length (6)
    (np.array([4, -1, 0, 0, 0]), "non-negative"),  # negative, sums to k
    (np.array([1, 1, 0, 0, 0]), "sum to k"),      # sums to 2, not 3
    (np.array([2, 2, 0, 0, 0]), "sum to k"),      # sums to 4
    (np.array([1.5, 1.5, 0.0, 0.0, 0.0]), "whole numbers"),  # non-integer, sums to k
    (np.array([np.nan, 3.0, 0.0, 0.0, 0.0]), "whole numbers"),
    (np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]), "sum to k"),  # one bad row in a batch
])
def test_check_rejects_invalid_count_vectors(bad, field):
    index = CountIndex(3, 5)
    with pytest.raises(GameValidationError, match=field):
        index.check(bad)


def test_check_accepts_whole_floats_and_returns_int64():
    index = CountIndex(3, 5)
    out = index.check(np.array([1.0, 0.0, 2.0, 0.0, 0.0]))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [1, 0, 2, 0, 0])


def test_rank_rejects_wrong_length():
    with pytest.raises(GameValidationError, match="5 entries"):
        CountIndex(3, 5).rank(np.array([1, 1, 1]))


@pytest.mark.parametrize("k,num_states", [(0, 3), (-1, 3), (3, 0)])
def test_index_rejects_bad_sizes(k, num_states):
    with pytest.raises(GameValidationError):
        CountIndex(k, num_states)


@st.composite
def count_vectors(draw):
    k = draw(st.integers(1, 15))
    num_states = draw(st.integers(1, 7))
    # random composition of k into num_states parts via sorted cut points
    cuts = sorted(draw(st.lists(st.integers(0, k), min_size=num_states - 1, max_size=num_states - 1)))
    bounds = [0, *cuts, k]
    return k, np.diff(bounds).astype(np.int64)


@settings(max_examples=200, deadline=None, database=None)  # no example database on disk
@given(count_vectors())
def test_rank_roundtrip_property(case):
    k, vector = case
    index = CountIndex(k, len(vector))
    checked = index.check(vector)
    r = int(index.rank(checked))
    assert 0 <= r < index.size
    np.testing.assert_array_equal(index.all_vectors()[r], vector)
