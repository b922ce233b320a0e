"""The warehouse task (TASKS.md section 2): its dynamics, rewards, observations and config errors."""

from __future__ import annotations

import numpy as np
import pytest

from altmarl_ros.marl.baselines import UniformLocalPolicy
from altmarl_ros.marl.envs import EnvState
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.tasks import make_env, make_game


class FixedAction:
    """Every robot takes the same action."""

    def __init__(self, action: int) -> None:
        self.action = action

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return np.eye(3)[np.full(features.shape[:-1], self.action)]


def test_reset_matches_the_spec():
    env = make_env("warehouse")
    state = env.reset(np.random.default_rng(0), 400)
    assert state.population.shape == (400, 500)
    assert np.all((state.global_state >= -1) & (state.global_state <= 1))
    assert np.all((state.population >= -2) & (state.population <= 2))
    main, second = state.population[:, :275], state.population[:, 275:]  # 55 % of 500 = 275
    main_bin, second_bin = env.bin_of(np.median(main, axis=1)), env.bin_of(np.median(second, axis=1))
    assert np.all(main_bin != second_bin)  # two distinct bins
    assert set(main_bin) == set(range(5))
    spread = np.std(main - np.median(main, axis=1, keepdims=True), axis=1)
    inner = (main_bin > 0) & (main_bin < 4)  # clipping narrows the clusters at the ends
    assert np.allclose(spread[inner].mean(), 0.18, atol=0.01)


def test_one_noiseless_step_follows_the_formulas():
    env = make_env("warehouse", {"n": 4, "global_noise": 0.0, "local_noise": 0.0})
    state = EnvState(np.array([0.5]), np.array([[0.5, 0.7, -2.0, 1.98]]))
    nxt, reward = env.step(state, np.array([4]), FixedAction(1), np.random.default_rng(0))  # target 1.6, all right
    np.testing.assert_allclose(nxt.global_state, [0.5 + 0.6 * (1.6 - 0.5)])
    np.testing.assert_allclose(nxt.population, [[0.55, 0.75, -1.95, 2.0]])  # clipped at 2
    r_g = 5 * np.exp(-(0.5 - 1.6) ** 2 / (2 * 0.3 ** 2))
    r_l = 10 * np.exp(-(np.array([0.5, 0.7, -2.0, 1.98]) - 0.5) ** 2 / (2 * 0.2 ** 2)) - 5 * 0.05
    np.testing.assert_allclose(reward, [r_g + r_l.mean()])


def test_every_config_number_reaches_the_env():
    rng_state = EnvState(np.array([0.0]), np.array([[0.0, 0.3]]))
    base = make_env("warehouse", {"n": 2})
    _, r0 = base.step(rng_state, np.array([2]), FixedAction(0), np.random.default_rng(1))
    for key, value in {"global_reward_scale": 4.0, "local_reward_width": 0.3, "local_reward_scale": 9.0,
                       "targets": [-1.5, -0.8, 0.1, 0.8, 1.6]}.items():
        env = make_env("warehouse", {"n": 2, key: value})
        _, r = env.step(rng_state, np.array([2]), FixedAction(0), np.random.default_rng(1))
        assert r[0] != r0[0], key
    a = make_env("warehouse", {"n": 2}).step(rng_state, np.array([0]), FixedAction(1), np.random.default_rng(1))[0]
    b = make_env("warehouse", {"n": 2, "global_gain": 0.3, "local_moves": [0, 0.1, -0.1]}).step(
        rng_state, np.array([0]), FixedAction(1), np.random.default_rng(1))[0]
    assert a.global_state[0] != b.global_state[0] and not np.array_equal(a.population, b.population)


def test_observations_histograms_and_mode():
    env = make_env("warehouse", {"n": 10})
    state = EnvState(np.array([1.0]), np.array([[-1.9, -1.9, -1.9, -1.9, 0.0, 0.1, 0.2, 1.9, 1.9, 1.9]]))
    rng = np.random.default_rng(0)
    full = env.histogram(state, rng, 10, "full")
    np.testing.assert_allclose(full, [[0.4, 0.0, 0.3, 0.0, 0.3]])
    np.testing.assert_allclose(env.histogram(state, rng, 10, "subsample"), full)  # k = n sees everyone
    assert env.mode(state)[0] == 0
    obs = env.observe(state, rng, 4)
    assert obs.shape == (1, 6) and obs[0, 0] == pytest.approx(0.5)  # s_g / half-width
    np.testing.assert_allclose(obs[0, 1:].sum(), 1.0)
    assert np.all(obs[0, 1:] * 4 == np.round(obs[0, 1:] * 4))  # counts of 4 sampled robots


def test_subsample_is_uniform_without_replacement():
    env = make_env("warehouse", {"n": 5})
    state = EnvState(np.zeros(20000), np.tile(np.array([-1.9, -1.0, 0.0, 1.0, 1.9]), (20000, 1)))
    hist = env.histogram(state, np.random.default_rng(3), 2, "subsample") * 2
    assert np.all(hist <= 1)  # one robot per bin: never drawn twice
    from scipy.stats import chisquare

    assert chisquare(hist.sum(axis=0)).pvalue > 0.001


def test_random_policies_run_a_whole_episode():
    from altmarl_ros.marl.baselines import RandomGlobalPolicy
    from altmarl_ros.marl.rollouts import evaluate_env

    env = make_env("warehouse", {"n": 50})
    report = evaluate_env(env, RandomGlobalPolicy(5, 5, 0), UniformLocalPolicy(3), [0, 1], 4)
    assert np.isfinite(report.return_mean) and 0 <= report.mode_accuracy <= 1


@pytest.mark.parametrize("overrides, message", [
    ({"targets": [-1.0, 3.0]}, "must lie in"),
    ({"targets": [0.0]}, "at least 2"),
    ({"bins": 1}, "bins must be >= 2"),
    ({"local_noise": -0.1}, "local_noise must be >= 0"),
    ({"local_reward_width": 0.0}, "local_reward_width must be > 0"),
    ({"n": 0}, "n (number of local agents) must be an integer >= 1"),
    ({"main_fraction": 1.5}, "main_fraction"),
    ({"speed": 3}, "unknown WarehouseConfig keys"),
])
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(GameValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env("warehouse", overrides)


def test_warehouse_has_no_tabular_game():
    with pytest.raises(GameValidationError, match="--learner deep"):
        make_game("warehouse")


def test_a_table_is_not_a_warehouse_policy():
    env = make_env("warehouse", {"n": 5})
    with pytest.raises(GameValidationError, match="needs a local policy over"):
        env.prepare_local(np.full((5, 5, 3), 1 / 3))


def test_config_file_lists_the_defaults():
    """config/warehouse.yaml documents every task and deep-learner key with its default value."""
    from pathlib import Path

    import yaml

    from altmarl_ros.marl.deep.learners import DeepConfig

    data = yaml.safe_load((Path(__file__).parent.parent / "config" / "warehouse.yaml").read_text())
    assert make_env("warehouse", data["task"]).config == make_env("warehouse").config
    assert set(data["task"]) == set(make_env("warehouse").config)
    assert DeepConfig.from_mapping(data["deep"]) == DeepConfig()
