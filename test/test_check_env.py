"""check_env (marl/check_env.py): every task keeps the learners' contract; broken envs and games are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from altmarl_ros.marl.check_env import EnvCheckError, check_env, check_game
from altmarl_ros.marl.envs import EnvState, TabularPopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.tasks import ALL_TASKS, TASKS, make_env, make_game
from altmarl_ros.tasks.warehouse import WarehouseConfig, WarehouseEnv


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_task_passes_in_its_env_form(task):
    check_env(make_env(task))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_tabular_task_passes_as_a_game(task):
    game = make_game(task)
    assert check_game(game) == game
    check_env(game)
    check_env(TabularPopulationEnv(game), seed=3, batch=2, k=game.n)


def test_the_calibrated_federated_game_passes():
    check_env(make_game("federated", {"calibration": "real", "calibration_seeds": 20}), steps=5)


def test_the_error_is_a_game_validation_error():
    assert issubclass(EnvCheckError, GameValidationError)


def test_something_else_is_refused():
    with pytest.raises(EnvCheckError, match="needs a TabularGame or a PopulationEnv.*got dict"):
        check_env({"reset": 1})


# --- broken games -----------------------------------------------------------------------------------------------
def _unvalidated(game: TabularGame, **changes) -> TabularGame:
    """A copy of `game` with `changes`, built without TabularGame's validation (as a later edit would leave it)."""
    broken = object.__new__(TabularGame)
    for f in dataclasses.fields(TabularGame):
        object.__setattr__(broken, f.name, changes.get(f.name, getattr(game, f.name)))
    return broken


@pytest.fixture(scope="module")
def zones():
    return make_game("zones", {"n": 50})


def test_probabilities_not_summing_to_1_are_refused(zones):
    bad = np.array(zones.local_transition)
    bad[2, 1, 0] *= 0.9
    with pytest.raises(EnvCheckError, match=r"local_transition must sum to 1 over its last axis; the row at "
                                            r"\(2, 1, 0\) sums to 0\.9"):
        check_env(_unvalidated(zones, local_transition=bad))


def test_negative_probabilities_are_refused(zones):
    bad = np.array(zones.global_transition)
    bad[0, 0, :2] = [-0.5, bad[0, 0, 0] + bad[0, 0, 1] + 0.5]
    with pytest.raises(EnvCheckError, match=r"global_transition has negative probabilities at \(0, 0, 0\)"):
        check_env(_unvalidated(zones, global_transition=bad))


def test_a_nan_reward_in_a_game_is_refused(zones):
    bad = np.array(zones.local_reward)
    bad[1, 3, 2] = np.nan
    with pytest.raises(EnvCheckError, match=r"game 'zones': local_reward contains NaN or inf at \(1, 3, 2\)"):
        check_env(_unvalidated(zones, local_reward=bad))


def test_inconsistent_shapes_are_refused(zones):
    with pytest.raises(EnvCheckError, match=r"global_reward must have shape \(5, 5\), got \(5, 4\)"):
        check_env(_unvalidated(zones, global_reward=np.zeros((5, 4))))


def test_a_bad_gamma_or_init_distribution_is_refused(zones):
    with pytest.raises(EnvCheckError, match=r"gamma must lie in the open interval \(0, 1\), got 1\.0"):
        check_env(_unvalidated(zones, gamma=1.0))
    with pytest.raises(EnvCheckError, match="init_global must sum to 1"):
        check_env(_unvalidated(zones, init_global=np.full(5, 0.1)))
    with pytest.raises(EnvCheckError, match=r"init_local_alpha \(Dirichlet concentration\) must be > 0"):
        check_env(_unvalidated(zones, init_local_alpha=np.zeros(5)))


# --- broken envs ------------------------------------------------------------------------------------------------
class WideFeatures(TabularPopulationEnv):
    def global_features(self, global_state):
        return np.concatenate([super().global_features(global_state), np.zeros((len(global_state), 1))], axis=1)


class ColumnReward(TabularPopulationEnv):
    def step(self, state, global_action, local, rng):
        state, reward = super().step(state, global_action, local, rng)
        return state, reward[:, None]


class GlobalStateOutOfRange(TabularPopulationEnv):
    def step(self, state, global_action, local, rng):
        state, reward = super().step(state, global_action, local, rng)
        state.global_state[-1] = self.game.num_global_states
        return state, reward


class CountsLost(TabularPopulationEnv):
    def reset(self, rng, batch):
        state = super().reset(rng, batch)
        state.population[0, np.argmax(state.population[0])] -= 1
        return state


class ModeOutOfRange(TabularPopulationEnv):
    def mode(self, state):
        return super().mode(state) + self.num_bins


class MutatingAgents(TabularPopulationEnv):
    def agents_step(self, state, agents, actions, rng):
        state.global_state[:] = 0
        return super().agents_step(state, agents, actions, rng)


class AcceptsAnyK(TabularPopulationEnv):
    def check_k(self, k):
        pass


class Float64Observation(TabularPopulationEnv):
    def observe(self, state, rng, k, observation="subsample"):
        return super().observe(state, rng, k, observation).astype(np.float64)


class NanReward(WarehouseEnv):
    def step(self, state, global_action, local, rng):
        state, reward = super().step(state, global_action, local, rng)
        reward[1] = np.nan
        return state, reward


class UnseededReset(WarehouseEnv):
    def reset(self, rng, batch):
        state = super().reset(rng, batch)
        jitter = 0.01 * np.random.default_rng().standard_normal(batch)  # not from the rng it was given
        return EnvState(np.clip(state.global_state + jitter, self.c.low, self.c.high), state.population)


class StatefulReset(WarehouseEnv):
    resets = 0

    def reset(self, rng, batch):
        self.resets += 1
        state = super().reset(rng, batch)
        return EnvState(np.full(batch, 0.1 * (self.resets % 2)), state.population)


class Unclipped(WarehouseEnv):
    def step(self, state, global_action, local, rng):
        state, reward = super().step(state, global_action, local, rng)
        return EnvState(state.global_state, state.population + 5.0), reward  # robots past the segment's end


def _tabular(cls):
    return cls(make_game("zones", {"n": 50}))


def _warehouse(cls):
    return cls(WarehouseConfig(n=40))


BROKEN_ENVS = [
    (_tabular, WideFeatures, r"global_features\(global_state\) has shape \(4, 6\), expected \(4, 5\)"),
    (_tabular, ColumnReward, r"step 0: step\(state, global_action, local, rng\) reward has shape \(4, 1\), "
                             r"expected \(4,\)"),
    (_warehouse, NanReward, r"step 0: step\(state, global_action, local, rng\) reward contains NaN or inf at "
                            r"\(1,\); it must hold finite numbers"),
    (_tabular, GlobalStateOutOfRange, r"step 0: step\(.*\) global_state is out of range: 5 at \(3,\); "
                                      r"valid: \[0, 5\)"),
    (_warehouse, Unclipped, r"step 0: step\(.*\) population is out of range: .* valid: \[-2, 2\]"),
    (_tabular, CountsLost, r"reset population counts of episode 0 sum to 49; they must sum to n=50"),
    (_tabular, ModeOutOfRange, r"step 0: mode\(state\) is out of range: .*valid: \[0, 5\)"),
    (_tabular, MutatingAgents, r"agents_step\(state, agents, actions, rng\) modified the population state"),
    (_tabular, AcceptsAnyK, r"check_k accepted k=0; it must raise GameValidationError unless 1 <= k <= n=50"),
    (_tabular, Float64Observation, r"observe\(state, rng, k=5, 'subsample'\) has dtype float64; "
                                   r"observations must be float32"),
    (_warehouse, UnseededReset, r"not deterministic under the same seed: reset global_state differs between "
                                r"two episodes from np\.random\.default_rng\(0\)"),
    (_warehouse, StatefulReset, r"not deterministic under the same seed: reset global_state differs"),
]


@pytest.mark.parametrize(("make", "cls", "message"), BROKEN_ENVS, ids=[cls.__name__ for _, cls, _ in BROKEN_ENVS])
def test_a_broken_env_is_refused_with_the_problem_named(make, cls, message):
    with pytest.raises(EnvCheckError, match=message):
        check_env(make(cls))


def test_broken_sizes_are_refused():
    env = make_env("warehouse", {"n": 40})
    env.gamma = 1.5
    with pytest.raises(EnvCheckError, match=r"gamma must be a number in the open interval \(0, 1\), got 1\.5"):
        check_env(env)
    env = make_env("warehouse", {"n": 40})
    env.num_bins = 0
    with pytest.raises(EnvCheckError, match="num_bins must be an integer >= 1, got 0"):
        check_env(env)
    env = make_env("warehouse", {"n": 40})
    env.agents_step = None
    with pytest.raises(EnvCheckError, match=r"lacks the methods \['agents_step'\]"):
        check_env(env)
