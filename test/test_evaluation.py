"""Evaluation protocol and certificate helpers (altmarl_ros/marl/evaluation.py, certificate.py)."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from altmarl_ros.marl.certificate import global_gap, paired_difference, t_quantile
from altmarl_ros.marl.evaluation import evaluate, rollout
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.glearn import g_learn
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
from altmarl_ros.tasks import make_game

N = 30
K = 5
SEEDS = list(range(10))
ROLLOUTS = 20


@pytest.fixture(scope="module")
def game():
    return make_game("zones", {"n": N})


@pytest.fixture(scope="module")
def learned(game):
    result = g_learn(game, uniform_local_policy(game), K, m=16, tol=0.01, rng=np.random.default_rng(0))
    return GlobalPolicy.from_q(result.q_values, K)


def without_timing(report):
    return {k: v for k, v in dataclasses.asdict(report).items() if k != "seconds"}


def test_report_is_finite_and_consistent(game, learned):
    report = evaluate(game, learned, uniform_local_policy(game), SEEDS[:4], 10)
    assert len(report.per_seed_returns) == len(report.per_seed_mode_accuracy) == 4
    assert all(math.isfinite(x) for x in report.per_seed_returns)
    assert math.isfinite(report.return_mean) and math.isfinite(report.return_std)
    assert 0.0 <= report.mode_accuracy <= 1.0
    assert report.return_mean == pytest.approx(np.mean(report.per_seed_returns), rel=1e-12)
    assert report.return_std == pytest.approx(np.std(report.per_seed_returns, ddof=1), rel=1e-12)
    assert report.seeds == SEEDS[:4] and report.rollouts == 10 and report.n == N
    assert set(report.as_dict()) >= {"return_mean", "return_std", "mode_accuracy"}


def test_same_seeds_identical_report(game, learned):
    policy = uniform_local_policy(game)
    a = evaluate(game, learned, policy, SEEDS[:3], 10)
    b = evaluate(game, learned, policy, SEEDS[:3], 10)
    assert without_timing(a) == without_timing(b)  # exact float equality
    c = evaluate(game, learned, policy, [5, 6, 7], 10)
    assert a.per_seed_returns != c.per_seed_returns


def test_discounted_return_with_constant_rewards(game):
    """Constant r_g = 1 and r_l = 2.5: every episode returns 3.5 (1 - gamma^H) / (1 - gamma)."""
    flat = TabularGame(**{**game.__dict__, "local_reward": np.full(game.local_reward.shape, 2.5)})
    batch = rollout(flat, GlobalPolicy.constant(flat, 3), uniform_local_policy(flat), np.random.default_rng(0), 7)
    expected = 3.5 * (1 - flat.gamma ** flat.horizon) / (1 - flat.gamma)
    np.testing.assert_allclose(batch.discounted_return, expected, rtol=1e-12)
    assert batch.global_states.shape == (7, flat.horizon + 1) and batch.global_actions.shape == (7, flat.horizon)


def test_mode_hits_match_recorded_profiles(game, learned):
    batch = rollout(game, learned, uniform_local_policy(game), np.random.default_rng(3), 40, record_profiles=True)
    np.testing.assert_allclose(batch.profiles.sum(axis=-1), 1.0)
    # argmax of counts / n is the zone with most robots, ties to the lowest index
    np.testing.assert_array_equal(batch.mode_hits, batch.global_actions == np.argmax(batch.profiles, axis=-1))
    # a constant policy hits the mode only when that zone holds the most robots
    const = rollout(game, GlobalPolicy.constant(game, K, action=4), uniform_local_policy(game),
                    np.random.default_rng(3), 40, record_profiles=True)
    np.testing.assert_array_equal(const.mode_hits, np.argmax(const.profiles, axis=-1) == 4)


def test_learned_policy_beats_constant_with_common_random_numbers(game, learned):
    """The k = 5 G-LEARN policy (uniform robots) beats 'always zone 0' on return.

    Both policies are evaluated on the same seeds (common random numbers); the
    paired 95 % interval of the per-seed difference must lie above 0. The
    interval has a 2.5 % one-sided false-alarm rate if the policies were equal.
    """
    policy = uniform_local_policy(game)
    mine = evaluate(game, learned, policy, SEEDS, ROLLOUTS)
    const = evaluate(game, GlobalPolicy.constant(game, K), policy, SEEDS, ROLLOUTS)
    diff, half_width = paired_difference(mine.per_seed_returns, const.per_seed_returns)
    assert diff - half_width > 0, (diff, half_width)
    # (no claim on mode accuracy: the robots drift towards the dispatcher, so a fixed
    # zone makes itself the mode; a constant policy scores ~0.57 there, the learned one ~0.44)


def test_global_gap_against_itself_is_zero(game, learned):
    """A policy compared with the full-observation version of itself at k = n: the paired difference
    is exactly the difference of the two evaluations, and the CI is finite."""
    policy = uniform_local_policy(game)
    gap = global_gap(game, learned, learned, policy, SEEDS[:3], 10)
    full = evaluate(game, learned.with_observation("full"), policy, SEEDS[:3], 10)
    mine = evaluate(game, learned, policy, SEEDS[:3], 10)
    assert gap.gap == pytest.approx(full.return_mean - mine.return_mean, abs=1e-9)
    assert gap.reference_value == full.return_mean and gap.policy_value == mine.return_mean
    assert math.isfinite(gap.ci95) and gap.k_ref == K


@pytest.mark.parametrize("size", [2, 5, 15])
def test_paired_difference_matches_scipy(size):
    rng = np.random.default_rng(size)
    a, b = rng.normal(3, 1, size), rng.normal(2, 1, size)
    mean, half = paired_difference(list(a), list(b))
    low, high = stats.t.interval(0.95, size - 1, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert mean == pytest.approx(np.mean(a - b), rel=1e-12)
    # t_quantile may be a table rounded to 3 decimals: relative error <= 0.0005 / 2.1
    assert half == pytest.approx((high - low) / 2, rel=3e-4)
    single = paired_difference([1.0], [0.5])
    assert single[0] == 0.5 and math.isnan(single[1])


# 5e-4: a table rounded to 3 decimals is acceptable, anything coarser is not
@pytest.mark.parametrize("dof", [1, 2, 4, 9, 14, 16, 19, 25, 29, 30, 45, 60, 120, 1000])
def test_t_quantile_matches_student_t(dof):
    assert t_quantile(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=5e-4)


@pytest.mark.parametrize("dof", [1, 16, 20, 28, 29, 30, 31, 45, 60, 120])
def test_t_quantile_is_never_anti_conservative(dof):
    """The '95 %' interval may be wider than exact (rounded-up table), never narrower.

    An earlier version returned 1.96 for every dof >= 30 (true 2.042 at dof=30),
    a 94.1 % interval labelled 95 %.
    """
    assert t_quantile(dof) >= stats.t.ppf(0.975, dof) - 5e-4
