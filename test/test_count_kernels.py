"""The compiled G-LEARN kernels against their numpy references, and their independence from thread counts."""

from __future__ import annotations

import numpy as np
import pytest

from altmarl_ros.marl import count_kernels
from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.glearn import SampledCountTransition, solve_bellman, subsample_reward
from altmarl_ros.marl.policies import uniform_local_policy
from altmarl_ros.tasks import make_game

compiled = pytest.mark.skipif(not count_kernels.COMPILED, reason="numba is not installed (pip install numba)")


@pytest.fixture(scope="module")
def game():
    return make_game("zones", {"n": 300})


def _random_policy(game, seed):
    logits = np.random.default_rng(seed).normal(size=(game.num_local_states, game.num_global_states,
                                                      game.num_local_actions))
    policy = np.exp(logits)
    return policy / policy.sum(axis=-1, keepdims=True)


@compiled
@pytest.mark.parametrize("k, m", [(1, 3), (4, 8), (9, 5)])
def test_compiled_draws_equal_the_numpy_reference(game, k, m):
    policy = _random_policy(game, k)
    index = CountIndex(k, game.num_local_states)
    transition = SampledCountTransition(game, policy, index, m, np.random.default_rng(11))
    levels = count_kernels.thresholds(np.cumsum(game.local_next_state(policy), axis=-1)[..., :-1])
    reference = np.empty_like(transition.next_by_position)
    key = int(np.random.default_rng(11).integers(0, 2**63))  # the one value SampledCountTransition draws
    count_kernels.draw_next_ranks_numpy(index.all_vectors(), transition.order, transition.position, levels,
                                        index.binomial_table, key, reference)
    np.testing.assert_array_equal(transition.next_by_position, reference)


def test_next_ranks_are_count_vectors_of_k_agents(game):
    index = CountIndex(6, game.num_local_states)
    transition = SampledCountTransition(game, uniform_local_policy(game), index, 4, np.random.default_rng(0))
    ranks = transition.next_ranks
    assert ranks.shape == (game.num_global_states, index.size, 4)
    assert ranks.min() >= 0 and ranks.max() < index.size
    np.testing.assert_array_equal(np.sort(transition.order), np.arange(index.size))
    np.testing.assert_array_equal(transition.order[transition.position], np.arange(index.size))


@compiled
@pytest.mark.parametrize("zones", [3, 5, 9])  # 9 global states: the wide kernel
def test_compiled_bellman_matches_the_sparse_iteration(zones):
    """The accelerated compiled solve and the plain CSR iteration reach the same Q within both bounds."""
    game = make_game("zones", {"n": 300, "zones": zones})
    policy = _random_policy(game, zones)
    index = CountIndex(4, zones)
    transition = SampledCountTransition(game, policy, index, 6, np.random.default_rng(2))
    reward = subsample_reward(game, policy, index)
    fast, fast_iterations, fast_bound = solve_bellman(game, reward, transition, 1e-6, 5000)
    count_kernels.COMPILED = False
    try:
        plain, plain_iterations, plain_bound = solve_bellman(game, reward, transition, 1e-6, 5000)
    finally:
        count_kernels.COMPILED = True
    assert max(fast_bound, plain_bound) < 1e-6
    assert np.abs(fast - plain).max() <= fast_bound + plain_bound
    assert fast_iterations < plain_iterations  # what the acceleration is for


@compiled
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accelerated_error_bound_holds(game, seed):
    """What the returned bound promises: |Q - Q*| <= bound for the operator used, Q* solved to 1e-10."""
    index = CountIndex(6, game.num_local_states)
    policy = _random_policy(game, 20 + seed)
    reward = subsample_reward(game, policy, index)
    transition = SampledCountTransition(game, policy, index, 8, np.random.default_rng(seed))
    q, _, bound = solve_bellman(game, reward, transition, 0.01, 5000)
    count_kernels.COMPILED = False
    try:
        q_star, _, precise = solve_bellman(game, reward, transition, 1e-10, 20000)
    finally:
        count_kernels.COMPILED = True
    assert bound < 0.01 and precise < 1e-10
    assert np.abs(q - q_star).max() <= bound + precise


@compiled
def test_kernels_do_not_depend_on_the_thread_count(game):
    import numba

    policy = _random_policy(game, 7)
    index = CountIndex(8, game.num_local_states)
    reward = subsample_reward(game, policy, index)
    threads = numba.get_num_threads()
    results = []
    try:
        for count in sorted({1, threads}):
            numba.set_num_threads(count)
            transition = SampledCountTransition(game, policy, index, 5, np.random.default_rng(4))
            q, iterations, bound = solve_bellman(game, reward, transition, 1e-4, 5000)
            results.append((transition.next_by_position.copy(), q, iterations, bound))
    finally:
        numba.set_num_threads(threads)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0][0], other[0])
        np.testing.assert_array_equal(results[0][1], other[1])
        assert results[0][2:] == other[2:]


def test_locality_order_is_a_permutation_that_keeps_neighbours_close():
    index = CountIndex(12, 4)
    vectors = index.all_vectors()
    order = count_kernels.locality_order(vectors)
    np.testing.assert_array_equal(np.sort(order), np.arange(index.size))
    along = np.abs(np.diff(vectors[order].astype(int), axis=0)).sum(axis=1).mean()
    by_rank = np.abs(np.diff(vectors.astype(int), axis=0)).sum(axis=1).mean()
    assert along <= by_rank


def test_uniforms_are_uniform_and_keyed():
    u = count_kernels.uniforms_numpy(123, np.arange(2000), 4, 7)
    assert u.shape == (2000, 4, 7) and u.min() >= 0 and u.max() < 2**count_kernels.UNIFORM_BITS
    mean = u.mean() / 2**count_kernels.UNIFORM_BITS
    assert abs(mean - 0.5) < 4 * np.sqrt(1 / 12 / u.size)  # 4 standard errors
    assert not np.array_equal(u, count_kernels.uniforms_numpy(124, np.arange(2000), 4, 7))
