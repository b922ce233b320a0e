"""Every malformed input raises GameValidationError, and the message names what was wrong.

A valid game comes from `make_game('zones', ...)`; each case perturbs one of its
arrays via `TabularGame(**{**game.__dict__, field: bad})`.
"""

import numpy as np
import pytest

from altmarl_ros.marl.errors import AltmarlError, GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.glearn import OnlineGLearner, g_learn
from altmarl_ros.marl.policies import uniform_local_policy
from altmarl_ros.marl.population import AgentPopulation
from altmarl_ros.tasks import make_game

N = 12


@pytest.fixture(scope="module")
def game():
    return make_game("zones", {"n": N})


def rebuild(game, **changes):
    return TabularGame(**{**game.__dict__, **changes})


def writable(array):
    return np.array(array, dtype=np.float64, copy=True)


def test_error_is_a_value_error_and_package_error():
    assert issubclass(GameValidationError, ValueError)
    assert issubclass(GameValidationError, AltmarlError)


def test_valid_game_roundtrips(game):
    again = rebuild(game)
    assert again == game
    assert again.num_global_states == 5 and again.num_local_actions == 3


# --- probabilities that do not sum to 1 -----------------------------------------------

def _scaled_row(array, index, factor):
    out = writable(array)
    out[index] = out[index] * factor
    return out


@pytest.mark.parametrize("field, index", [
    ("global_transition", (2, 1)),
    ("local_transition", (4, 0, 2)),
    ("init_global", slice(None)),
])
@pytest.mark.parametrize("factor", [0.5, 1.01])
def test_probabilities_must_sum_to_one(game, field, index, factor):
    bad = _scaled_row(getattr(game, field), index, factor)
    with pytest.raises(GameValidationError, match=rf"{field} must sum to 1"):
        rebuild(game, **{field: bad})


def test_sum_error_reports_the_bad_row(game):
    bad = _scaled_row(game.global_transition, (3, 4), 0.5)
    with pytest.raises(GameValidationError, match=r"\(3, 4\)"):
        rebuild(game, global_transition=bad)


# --- negative entries (row still sums to 1, so only the sign is wrong) ------------------

@pytest.mark.parametrize("field, row", [
    ("global_transition", (1, 3)),
    ("local_transition", (2, 4, 1)),
    ("init_global", ()),
])
def test_negative_probabilities(game, field, row):
    bad = writable(getattr(game, field))
    # move entry 1's mass plus 0.3 onto entry 0 and set entry 1 to -0.3: the row still sums to 1
    bad[row + (0,)] += bad[row + (1,)] + 0.3
    bad[row + (1,)] = -0.3
    assert abs(bad[row].sum() - 1) < 1e-12
    with pytest.raises(GameValidationError, match=rf"{field} has negative"):
        rebuild(game, **{field: bad})


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_dirichlet_concentration_must_be_positive(game, value):
    bad = writable(game.init_local_alpha)
    bad[2] = value
    with pytest.raises(GameValidationError, match="init_local_alpha"):
        rebuild(game, init_local_alpha=bad)


# --- NaN / inf ------------------------------------------------------------------------

@pytest.mark.parametrize("field, where", [
    ("global_reward", (1, 2)),
    ("local_reward", (0, 3, 1)),
    ("global_transition", (0, 0, 0)),
    ("local_transition", (1, 1, 1, 1)),
    ("init_global", (3,)),
    ("init_local_alpha", (0,)),
])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(game, field, where, value):
    bad = writable(getattr(game, field))
    bad[where] = value
    with pytest.raises(GameValidationError, match=rf"{field} contains NaN or inf"):
        rebuild(game, **{field: bad})


# --- wrong shapes ---------------------------------------------------------------------

@pytest.mark.parametrize("field, bad_shape", [
    ("global_transition", (5, 5)),            # not 3-D
    ("local_transition", (5, 5, 3)),          # not 4-D
    ("global_reward", (5, 6)),
    ("global_reward", (5,)),
    ("local_reward", (5, 5, 4)),
    ("local_reward", (5, 3)),
    ("init_global", (6,)),
    ("init_local_alpha", (4,)),
])
def test_wrong_shapes(game, field, bad_shape):
    bad = np.ones(bad_shape) / bad_shape[-1]
    with pytest.raises(GameValidationError, match=field):
        rebuild(game, **{field: bad})


def test_local_transition_must_match_the_number_of_global_states(game):
    # 4 global states in the local transition, 5 in the global one
    bad = np.ascontiguousarray(game.local_transition[:, :4])
    with pytest.raises(GameValidationError, match=r"local_transition must have shape \(5, 5, 3, 5\)"):
        rebuild(game, local_transition=bad)


def test_global_transition_next_state_axis_must_match(game):
    bad = np.full((5, 5, 6), 1.0 / 6)
    with pytest.raises(GameValidationError, match="global_transition must have shape"):
        rebuild(game, global_transition=bad)


# --- scalars --------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [0, 0.0, 1, 1.0, 1.5, -0.5, np.nan, np.inf])
def test_gamma_outside_open_unit_interval(game, gamma):
    with pytest.raises(GameValidationError, match="gamma"):
        rebuild(game, gamma=gamma)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "10"])
def test_bad_n_in_game(game, n):
    with pytest.raises(GameValidationError, match=r"^n \(number of local agents\)"):
        rebuild(game, n=n)


@pytest.mark.parametrize("horizon", [0, -1, 1.5])
def test_bad_horizon(game, horizon):
    with pytest.raises(GameValidationError, match="horizon"):
        rebuild(game, horizon=horizon)


def test_with_n_rejects_bad_n(game):
    with pytest.raises(GameValidationError, match="n "):
        game.with_n(0)
    assert game.with_n(7).n == 7


# --- population size and subsample size -----------------------------------------------

@pytest.mark.parametrize("n", [0, -1])
def test_check_population_rejects_n(n):
    with pytest.raises(GameValidationError, match=r"^n "):
        check_population(n)


@pytest.mark.parametrize("n, k, needle", [
    (10, 0, r"k \(subsample size\) must be >= 1"),
    (10, -2, r"k \(subsample size\) must be >= 1"),
    (10, 11, "k=11 exceeds n=10"),
    (1, 2, "k=2 exceeds n=1"),
    (10, 2.0, r"k \(subsample size\) must be an integer"),
    (10, True, r"k \(subsample size\) must be an integer"),
])
def test_check_population_rejects_k(n, k, needle):
    with pytest.raises(GameValidationError, match=needle):
        check_population(n, k)


@pytest.mark.parametrize("n, k", [(1, 1), (10, 1), (10, 10)])
def test_check_population_accepts_edges(n, k):
    check_population(n, k)


@pytest.mark.parametrize("k, needle", [(0, "k "), (N + 1, f"k={N + 1} exceeds n={N}")])
def test_g_learn_rejects_k(game, k, needle):
    with pytest.raises(GameValidationError, match=needle):
        g_learn(game, uniform_local_policy(game), k, rng=np.random.default_rng(0))


@pytest.mark.parametrize("k, needle", [(0, "k "), (N + 1, f"k={N + 1} exceeds n={N}")])
def test_sample_ids_rejects_k(game, k, needle):
    population = AgentPopulation(game, np.zeros((2, N), dtype=np.int64))
    with pytest.raises(GameValidationError, match=needle):
        population.sample_ids(np.random.default_rng(0), k)


def test_agent_population_rejects_bad_states(game):
    with pytest.raises(GameValidationError, match="agent states"):
        AgentPopulation(game, np.full((2, N), 5))
    with pytest.raises(GameValidationError, match="agent states"):
        AgentPopulation(game, np.zeros((2, N + 1), dtype=np.int64))


# --- make_game ------------------------------------------------------------------------

def test_make_game_unknown_task():
    with pytest.raises(GameValidationError, match="unknown task 'gridworld'.*zones"):
        make_game("gridworld", {})


def test_make_game_unknown_key():
    with pytest.raises(GameValidationError, match=r"unknown ZonesConfig keys \['robots'\]"):
        make_game("zones", {"robots": 10})


@pytest.mark.parametrize("overrides, needle", [
    ({"n": "many"}, "^n must be an integer"),
    ({"n": 2.5}, "^n must be an integer"),
    ({"n": 0}, r"^n \(number of local agents\)"),
    ({"zones": 1}, "zones must be >= 2"),
    ({"gamma": 1.0}, "gamma"),
    ({"gamma": "high"}, "gamma must be a number"),
    ({"action_bonus": [0.0, 1.0]}, "action_bonus"),
    ({"horizon": 0}, "horizon"),
])
def test_make_game_bad_values(overrides, needle):
    with pytest.raises(GameValidationError, match=needle):
        make_game("zones", overrides)


def test_make_game_config_is_not_hard_wired():
    game = make_game("zones", {"zones": 7, "n": 9})
    assert game.global_transition.shape == (7, 7, 7)
    assert game.local_transition.shape == (7, 7, 3, 7)
    assert game.n == 9


# --- g_learn parameters ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    ({"m": 0}, r"^m \("),
    ({"m": -4}, r"^m \("),
    ({"tol": 0.0}, "^tol must be > 0"),
    ({"tol": -1e-3}, "^tol must be > 0"),
    ({"tol": np.nan}, "^tol must be > 0"),
    ({"max_iters": 0}, "^max_iters"),
    ({"method": "magic"}, "method must be 'sampled' or 'exact', got 'magic'"),
    ({"rng": None}, "rng"),
])
def test_g_learn_bad_parameters(game, kwargs, needle):
    call = {"method": "sampled", "m": 4, "tol": 0.1, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(GameValidationError, match=needle):
        g_learn(game, uniform_local_policy(game), 2, **call)


def test_g_learn_exact_refuses_large_k():
    big = make_game("zones", {"n": 40})
    # C(17 + 4, 4) = 5985 count vectors > the exact operator's 5000 limit
    with pytest.raises(GameValidationError, match="exact G-LEARN.*k=17"):
        g_learn(big, uniform_local_policy(big), 17, method="exact")


def test_g_learn_rejects_bad_local_policy(game):
    policy = uniform_local_policy(game)
    policy[0, 0] = [0.5, 0.5, 0.5]
    with pytest.raises(GameValidationError, match="local policy must sum to 1"):
        g_learn(game, policy, 2, rng=np.random.default_rng(0))
    with pytest.raises(GameValidationError, match="local policy must have shape"):
        g_learn(game, uniform_local_policy(game)[:, :, :2], 2, rng=np.random.default_rng(0))


# --- OnlineGLearner -------------------------------------------------------------------

@pytest.fixture
def learner(game):
    return OnlineGLearner(game, 3, np.random.default_rng(0), epsilon=0.1)


GOOD = np.array([1, 0, 2, 0, 0])


@pytest.mark.parametrize("counts, needle", [
    (np.array([1, 0, 1, 0, 0]), "sum to k=3"),
    (np.array([4, 0, 0, 0, 0]), "sum to k=3"),
    (np.array([1, 1, 1, 0]), "5 entries"),
    (np.array([1, 1, 1, 0, 0, 0]), "5 entries"),
    (np.array([4, -1, 0, 0, 0]), "non-negative"),
    (np.array([1.5, 1.5, 0, 0, 0]), "whole numbers"),
])
def test_online_rejects_bad_counts(learner, counts, needle):
    with pytest.raises(GameValidationError, match=needle):
        learner.act(0, counts)
    with pytest.raises(GameValidationError, match=needle):
        learner.update(0, counts, 0, 1.0, 0, GOOD)
    with pytest.raises(GameValidationError, match=needle):
        learner.update(0, GOOD, 0, 1.0, 0, counts)


@pytest.mark.parametrize("epsilon", [-0.1, 1.5, np.nan])
def test_online_rejects_bad_epsilon(game, epsilon):
    with pytest.raises(GameValidationError, match="epsilon"):
        OnlineGLearner(game, 3, np.random.default_rng(0), epsilon=epsilon)


@pytest.mark.parametrize("rate", [0.0, -0.5, 1.5, np.nan])
def test_online_rejects_bad_learning_rate(game, rate):
    with pytest.raises(GameValidationError, match="learning_rate"):
        OnlineGLearner(game, 3, np.random.default_rng(0), learning_rate=rate)


@pytest.mark.parametrize("reward", [np.nan, np.inf, -np.inf])
def test_online_rejects_non_finite_reward(learner, reward):
    before = learner.q_values.copy()
    with pytest.raises(GameValidationError, match="reward must be finite"):
        learner.update(0, GOOD, 0, reward, 1, GOOD)
    # a rejected update leaves the table and the visit counts untouched
    np.testing.assert_array_equal(learner.q_values, before)
    assert learner.visits.sum() == 0


def test_online_rejects_out_of_range_state_and_action(learner):
    with pytest.raises(GameValidationError, match="global state 5"):
        learner.act(5, GOOD)
    with pytest.raises(GameValidationError, match="global state -1"):
        learner.update(-1, GOOD, 0, 1.0, 0, GOOD)
    with pytest.raises(GameValidationError, match="action 5"):
        learner.update(0, GOOD, 5, 1.0, 0, GOOD)


def test_online_rejects_bad_k_and_q_table(game):
    with pytest.raises(GameValidationError, match=f"k={N + 1} exceeds"):
        OnlineGLearner(game, N + 1, np.random.default_rng(0))
    with pytest.raises(GameValidationError, match="Q table for k=3"):
        OnlineGLearner(game, 3, np.random.default_rng(0), q_values=np.zeros((5, 34, 5)))
