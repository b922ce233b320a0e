"""Population simulators and subsampling (altmarl_ros/marl/population.py, policies.py).

Statistical tests use fixed seeds, so each is deterministic; the level 0.001 is
the false-alarm rate each test would have over random seeds if the code is
right (about 1 % for the dozen tests in this file together). A failure means
the sampler's distribution is wrong, not bad luck to retry.
"""

from itertools import combinations
from math import comb

import numpy as np
import pytest
from scipy import stats

from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.policies import GlobalPolicy, hypergeometric_subsample, round_counts
from altmarl_ros.marl.population import (
    AgentPopulation,
    CountPopulation,
    inverse_cdf_draw,
    sample_initial_states,
    step_global,
)
from altmarl_ros.tasks import make_game

LEVEL = 0.001  # false-alarm rate of each goodness-of-fit test (see module docstring)


def merge_small_bins(observed, expected, minimum):
    """Merge adjacent bins (in order) until each expected count is >= minimum (chi-square validity)."""
    obs_out, exp_out, o_acc, e_acc = [], [], 0.0, 0.0
    for o, e in zip(observed, expected, strict=True):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= minimum:
            obs_out.append(o_acc)
            exp_out.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        obs_out[-1] += o_acc
        exp_out[-1] += e_acc
    return np.array(obs_out), np.array(exp_out)


# --- (a) the k-subsample of agent ids -------------------------------------------------

def test_sample_ids_never_repeat_and_stay_in_range():
    game = make_game("zones", {"n": 20})
    population = AgentPopulation(game, np.zeros((3000, 20), dtype=np.int64))
    rng = np.random.default_rng(11)
    for k in (1, 7, 19, 20):
        ids = population.sample_ids(rng, k)
        assert ids.shape == (3000, k)
        assert ids.min() >= 0 and ids.max() < 20
        ordered = np.sort(ids, axis=1)
        assert np.all(np.diff(ordered, axis=1) > 0), f"an id repeats within a draw for k={k}"
    # k = n: every draw is a permutation of all agents
    np.testing.assert_array_equal(np.sort(population.sample_ids(rng, 20), axis=1), np.tile(np.arange(20), (3000, 1)))


def test_sample_ids_inclusion_is_uniform():
    """Each agent is included with probability k/n.

    The inclusion counts of one draw are k ones without replacement, so their
    covariance is (n-k)/(n-1) times that of a multinomial; Pearson's statistic
    from `chisquare` is rescaled by (n-1)/(n-k) so that it is chi2(n-1) under the
    null (without the rescaling the test would be conservative, not wrong).
    """
    n, k, draws = 20, 7, 20000
    game = make_game("zones", {"n": n})
    population = AgentPopulation(game, np.zeros((draws, n), dtype=np.int64))
    ids = population.sample_ids(np.random.default_rng(2024), k)
    inclusion = np.bincount(ids.ravel(), minlength=n)
    raw = stats.chisquare(inclusion, np.full(n, draws * k / n))
    statistic = raw.statistic * (n - 1) / (n - k)
    assert stats.chi2.sf(statistic, n - 1) > LEVEL, inclusion


def test_sample_ids_subsets_are_uniform():
    """All C(6, 3) = 20 subsets are equally likely (stronger than uniform inclusion)."""
    n, k, draws = 6, 3, 20000
    game = make_game("zones", {"n": n})
    population = AgentPopulation(game, np.zeros((draws, n), dtype=np.int64))
    ids = np.sort(population.sample_ids(np.random.default_rng(99), k), axis=1)
    subsets = {s: i for i, s in enumerate(combinations(range(n), k))}
    codes = np.array([subsets[tuple(row)] for row in ids.tolist()])
    observed = np.bincount(codes, minlength=len(subsets))
    assert stats.chisquare(observed).pvalue > LEVEL, observed


def test_agent_subsample_counts_the_sampled_agents():
    game = make_game("zones", {"n": 15})
    rng = np.random.default_rng(5)
    states = rng.integers(0, 5, size=(200, 15))
    population = AgentPopulation(game, states)
    counts = population.subsample(np.random.default_rng(1), 6)
    ids = population.sample_ids(np.random.default_rng(1), 6)  # same seed, same ids
    expected = np.stack([np.bincount(states[b, ids[b]], minlength=5) for b in range(200)])
    np.testing.assert_array_equal(counts, expected)
    assert np.all(counts <= population.state_counts())


# --- (b) the multivariate hypergeometric draw -----------------------------------------

def test_hypergeometric_subsample_matches_exact_pmf():
    population = np.array([3, 0, 2, 4, 1])  # n = 10, with an empty state
    n, k, draws = population.sum(), 4, 30000
    index = CountIndex(k, len(population))
    vectors = index.all_vectors()
    ways = [[comb(int(c), int(x)) for c, x in zip(population, v, strict=True)] for v in vectors]
    pmf = np.prod(ways, axis=1) / comb(int(n), k)
    assert abs(pmf.sum() - 1) < 1e-12
    draw = hypergeometric_subsample(np.random.default_rng(7), np.tile(population, (draws, 1)), k)
    observed = np.bincount(index.rank(draw), minlength=index.size)
    assert observed[pmf == 0].sum() == 0, "drew a count vector that the population cannot produce"
    support = pmf > 0
    # smallest pmf on the support is 1/210, i.e. an expected count of ~143: no bins need merging
    assert stats.chisquare(observed[support], pmf[support] * draws).pvalue > LEVEL


def test_hypergeometric_subsample_is_feasible():
    rng = np.random.default_rng(3)
    populations = rng.multinomial(25, rng.dirichlet(np.full(5, 0.4), size=2000))
    for k in (1, 4, 13, 25):
        draw = hypergeometric_subsample(rng, populations, k)
        assert np.all(draw.sum(axis=1) == k)
        assert np.all(draw >= 0)
        assert np.all(draw <= populations)
    # k = population: the subsample is everyone
    np.testing.assert_array_equal(hypergeometric_subsample(rng, populations, 25), populations)


def test_hypergeometric_subsample_rejects_too_large_k():
    with pytest.raises(GameValidationError, match="k=6"):
        hypergeometric_subsample(np.random.default_rng(0), np.array([[2, 1, 2]]), 6)


def test_count_and_agent_subsample_agree():
    """Both population types give the same distribution of F_Delta for the same population."""
    game = make_game("zones", {"n": 12})
    counts = np.array([5, 0, 4, 1, 2])
    draws, k = 12000, 4
    index = CountIndex(k, 5)
    by_counts = CountPopulation(game, np.tile(counts, (draws, 1))).subsample(np.random.default_rng(1), k)
    by_agents = AgentPopulation.from_counts(game, np.random.default_rng(2), np.tile(counts, (draws, 1))) \
        .subsample(np.random.default_rng(3), k)
    table = np.stack([np.bincount(index.rank(by_counts), minlength=index.size),
                      np.bincount(index.rank(by_agents), minlength=index.size)])
    table = table[:, table.sum(axis=0) > 0]
    assert table.sum(axis=0).min() >= 20  # every cell's expected count >= 10
    assert stats.chi2_contingency(table).pvalue > LEVEL


# --- (c) CountPopulation and AgentPopulation agree in distribution --------------------

N_AGENTS = 30
INITIAL = np.array([12, 0, 3, 9, 6])
GLOBAL_SEQUENCE = np.array([0, 3, 3, 1, 4, 2])
BATCH = 4000


@pytest.fixture(scope="module")
def simulated():
    game = make_game("zones", {"n": N_AGENTS})
    policy = np.random.default_rng(0).dirichlet(np.full(3, 0.7), size=(5, 5))  # fixed, non-uniform
    out = {"game": game, "policy": policy}
    for name, population, rng in [
        ("counts", CountPopulation(game, np.tile(INITIAL, (BATCH, 1))), np.random.default_rng(101)),
        ("agents", AgentPopulation.from_counts(game, np.random.default_rng(5), np.tile(INITIAL, (BATCH, 1))),
         np.random.default_rng(202)),
    ]:
        rewards, action_counts = [], []
        for g in GLOBAL_SEQUENCE:
            step = population.step(rng, np.full(BATCH, g), policy)
            rewards.append(step.local_reward_mean)
            action_counts.append(step.action_counts)
            assert np.all(population.state_counts().sum(axis=1) == N_AGENTS)
        out[name] = {"final": population.state_counts(), "rewards": np.stack(rewards, axis=1),
                     "action_counts": np.stack(action_counts, axis=1)}
    return out


def exact_final_pmf(game, policy, state):
    """Exact law of the count of `state` after the fixed global sequence.

    Given the global states, agents move independently, so the count is a sum of
    Binomial(INITIAL[s], p_s) with p_s the s -> state probability of the product chain.
    """
    chain = np.eye(5)
    for g in GLOBAL_SEQUENCE:
        chain = chain @ game.local_next_state(policy)[:, g, :]
    pmf = np.ones(1)
    for s, c in enumerate(INITIAL):
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(c + 1), c, chain[s, state]))
    return pmf


def exact_mean_rewards(game, policy):
    mean, rewards = INITIAL.astype(float), []
    rbar = game.expected_local_reward(policy)
    for g in GLOBAL_SEQUENCE:
        rewards.append(mean @ rbar[:, g] / N_AGENTS)
        mean = mean @ game.local_next_state(policy)[:, g, :]
    return np.array(rewards), mean


@pytest.mark.parametrize("state", [0, 3])
def test_populations_agree_two_sample(simulated, state):
    a = np.bincount(simulated["counts"]["final"][:, state], minlength=N_AGENTS + 1)
    b = np.bincount(simulated["agents"]["final"][:, state], minlength=N_AGENTS + 1)
    # merge adjacent values until the pooled bin holds >= 20 (each cell expects >= 10);
    # the bins depend only on the pooled sample, which is exchangeable under the null
    table, acc = [], np.zeros(2)
    for x, y in zip(a, b, strict=True):
        acc += (x, y)
        if acc.sum() >= 20:
            table.append(acc.copy())
            acc[:] = 0
    table[-1] += acc
    table = np.array(table).T
    assert table.shape[1] >= 5, "the count should spread over several values"
    assert stats.chi2_contingency(table).pvalue > LEVEL


@pytest.mark.parametrize("which", ["counts", "agents"])
@pytest.mark.parametrize("state", [0, 3])
def test_population_matches_exact_law(simulated, which, state):
    pmf = exact_final_pmf(simulated["game"], simulated["policy"], state)
    observed = np.bincount(simulated[which]["final"][:, state], minlength=len(pmf))
    assert len(observed) == len(pmf)
    obs, exp = merge_small_bins(observed, pmf * BATCH, minimum=10)
    assert stats.chisquare(obs, exp).pvalue > LEVEL


def test_populations_agree_on_mean_local_reward(simulated):
    a = simulated["counts"]["rewards"].sum(axis=1)
    b = simulated["agents"]["rewards"].sum(axis=1)
    assert stats.ttest_ind(a, b, equal_var=False).pvalue > LEVEL
    exact, _ = exact_mean_rewards(simulated["game"], simulated["policy"])
    for which in ("counts", "agents"):
        per_step = simulated[which]["rewards"]
        # each step's mean against its exact expectation, Bonferroni over the steps
        pvalues = stats.ttest_1samp(per_step, exact, axis=0).pvalue
        assert pvalues.min() > LEVEL / len(GLOBAL_SEQUENCE), (which, per_step.mean(axis=0), exact)


def test_action_counts_are_consistent(simulated):
    policy = simulated["policy"]
    exact_state_means = [INITIAL.astype(float)]
    for g in GLOBAL_SEQUENCE[:-1]:
        exact_state_means.append(exact_state_means[-1] @ simulated["game"].local_next_state(policy)[:, g, :])
    for which in ("counts", "agents"):
        actions = simulated[which]["action_counts"]  # (batch, steps, L, A)
        assert np.all(actions.sum(axis=(2, 3)) == N_AGENTS)
        np.testing.assert_array_equal(actions[:, 0].sum(axis=-1), np.tile(INITIAL, (BATCH, 1)))
        for t, g in enumerate(GLOBAL_SEQUENCE):
            expected = exact_state_means[t][:, None] * policy[:, g, :]
            # sd of one count is <= sqrt(n)/2; 6 standard errors of the batch mean, so a
            # per-entry false alarm is ~2e-9: a miss means a wrong action law, not noise
            tolerance = 6 * np.sqrt(N_AGENTS) / 2 / np.sqrt(BATCH)
            np.testing.assert_allclose(actions[:, t].mean(axis=0), expected, atol=tolerance)


def test_step_global_matches_transition():
    game = make_game("zones", {"n": 10})
    draws = 20000
    nxt = step_global(game, np.random.default_rng(4), np.full(draws, 2), np.full(draws, 4))
    observed = np.bincount(nxt, minlength=5)
    assert stats.chisquare(observed, game.global_transition[2, 4] * draws).pvalue > LEVEL


@pytest.mark.parametrize("size", [1, 7, (3, 4)])
def test_sized_draws_are_numpys_choice(size):
    """Draws of a given size reproduce Generator.choice(p=...) draw for draw and leave the stream where it
    leaves it, so moving a call from choice to inverse_cdf_draw changes no seeded number."""
    rng = np.random.default_rng(11)
    for probs in (np.full(5, 0.2), rng.dirichlet(np.full(6, 0.3)), np.array([0.0, 1.0, 0.0])):
        ours, numpy_choice = np.random.default_rng(5), np.random.default_rng(5)
        drawn = inverse_cdf_draw(ours, probs, size=size)
        expected = numpy_choice.choice(len(probs), size=size, p=probs)
        assert drawn.shape == expected.shape and np.array_equal(drawn, expected)
        assert ours.random() == numpy_choice.random()


def test_row_draws_follow_each_rows_distribution():
    rng = np.random.default_rng(2)
    probs = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])
    draws = inverse_cdf_draw(rng, np.broadcast_to(probs, (20_000, 2, 3)))
    assert set(np.unique(draws[:, 1])) == {2}
    observed = np.bincount(draws[:, 0], minlength=3)
    assert stats.chisquare(observed, 20_000 * probs[0]).pvalue > LEVEL


def test_sized_draws_need_one_distribution():
    with pytest.raises(ValueError, match="1-D probs"):
        inverse_cdf_draw(np.random.default_rng(0), np.full((2, 3), 1 / 3), size=4)


def test_sample_initial_states_shapes_and_sums():
    game = make_game("zones", {"n": 17})
    g, counts = sample_initial_states(game, np.random.default_rng(0), 500)
    assert g.shape == (500,) and counts.shape == (500, 5)
    assert np.all(counts.sum(axis=1) == 17) and np.all((g >= 0) & (g < 5))


def test_count_population_rejects_bad_counts():
    game = make_game("zones", {"n": 10})
    with pytest.raises(GameValidationError, match="sum to n=10"):
        CountPopulation(game, np.array([[3, 3, 3, 0, 0]]))
    with pytest.raises(GameValidationError, match=r"shape \(batch, 5\)"):
        CountPopulation(game, np.array([[5, 5, 0, 0]]))


# --- (d) round_counts -----------------------------------------------------------------

@pytest.mark.parametrize("counts, k, expected", [
    ([5, 3, 2], 4, [2, 1, 1]),       # exact (2, 1.2, 0.8): the one missing unit goes to remainder 0.8
    ([1, 1, 1], 2, [1, 1, 0]),       # three equal remainders: ties to the lowest index
    ([0, 7, 0, 3], 10, [0, 7, 0, 3]),  # k = total: unchanged
    ([10, 0, 0], 3, [3, 0, 0]),
])
def test_round_counts_examples(counts, k, expected):
    np.testing.assert_array_equal(round_counts(np.array(counts), k), expected)


def test_round_counts_sums_to_k_and_is_deterministic():
    rng = np.random.default_rng(8)
    populations = rng.multinomial(97, rng.dirichlet(np.full(5, 0.5), size=3000))
    for k in (1, 5, 13, 60):
        first = round_counts(populations, k)
        second = round_counts(populations.copy(), k)
        np.testing.assert_array_equal(first, second)
        assert np.all(first.sum(axis=1) == k)
        assert np.all(first >= 0)
        exact = populations * k / 97
        # largest remainder: each entry is the floor or the ceiling of its exact share
        assert np.all(np.abs(first - exact) < 1)


def test_full_observation_policy_rounds_the_whole_population():
    game = make_game("zones", {"n": 10})
    policy = GlobalPolicy.constant(game, 4).with_observation("full")
    counts = np.array([[5, 3, 2, 0, 0], [0, 0, 10, 0, 0]])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(policy.observe(rng, counts, 10), round_counts(counts, 4))
