"""Population environments: one interface for every game the deep learners train on.

A `PopulationEnv` simulates a batch of independent episodes of one global agent
and n local agents. The deep learners only ever see it through:

* `observe(state, rng, k, observation)`: the coordinator's input, the features
  of s_g followed by the normalised histogram of a fresh uniform k-subsample
  (or, for the full-observation reference, of the whole population);
* `step(state, global_action, local, rng)`: one step of the population under a
  frozen local policy; returns the system reward r_g + (1/n) sum_i r_l;
* `agents_reset / agents_step / agent_features`: representative agents that
  follow another policy while the population (the mean field) follows the
  frozen one: the induced MDP of L-LEARN. They are not part of the population,
  as one agent among many does not move the mean field.

`TabularPopulationEnv` wraps a `TabularGame` (count-based, exact in
distribution for any n); `tasks/warehouse.py` has a continuous one.
`marl/check_env.py` checks that an env keeps this contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.policies import check_local_policy, hypergeometric_subsample
from altmarl_ros.marl.population import CountPopulation, inverse_cdf_draw, sample_initial_states, step_global

OBSERVATIONS = ("subsample", "full")


@dataclass
class EnvState:
    """A batch of episodes: s_g per episode and the population (counts or per-agent states)."""

    global_state: np.ndarray  # (B,)
    population: np.ndarray  # (B, L) counts, or (B, n) per-agent states


class PopulationEnv(ABC):
    name: str
    n: int
    gamma: float
    horizon: int
    num_global_actions: int
    num_local_actions: int
    num_bins: int  # histogram bins of the coordinator's observation
    global_feature_dim: int
    local_feature_dim: int
    config: dict[str, Any]
    # closed interval [low, high] holding every continuous state (s_g and each robot's s_i), which
    # marl.check_env checks; None where states are indices (a TabularGame's) or unbounded
    state_bounds: tuple[float, float] | None = None

    @property
    def global_obs_dim(self) -> int:
        return self.global_feature_dim + self.num_bins

    def check_k(self, k: int) -> None:
        check_population(self.n, k)

    @abstractmethod
    def reset(self, rng: np.random.Generator, batch: int) -> EnvState: ...

    @abstractmethod
    def global_features(self, global_state: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def histogram(self, state: EnvState, rng: np.random.Generator, k: int, observation: str) -> np.ndarray:
        """Normalised (sums to 1) bin histogram of the k-subsample or of the whole population."""

    @abstractmethod
    def mode(self, state: EnvState) -> np.ndarray:
        """The bin holding most of the whole population (ties to the lowest index), for mode accuracy."""

    @abstractmethod
    def prepare_local(self, local_policy: Any) -> Any:
        """Turn a local policy (table or network) into what `step` uses; checked once, used many times."""

    @abstractmethod
    def step(self, state: EnvState, global_action: np.ndarray, local: Any,
             rng: np.random.Generator) -> tuple[EnvState, np.ndarray]:
        """One step of every episode; returns (next state, system reward (B,))."""

    @abstractmethod
    def agents_reset(self, state: EnvState, rng: np.random.Generator, m: int) -> np.ndarray:
        """m representative agents per episode, drawn like a member of the initial population."""

    @abstractmethod
    def agent_features(self, global_state: np.ndarray, agents: np.ndarray) -> np.ndarray:
        """Local observation (s_g, s_l) features, shape agents.shape + (local_feature_dim,)."""

    @abstractmethod
    def agents_step(self, state: EnvState, agents: np.ndarray, actions: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Move representative agents with s_g of this step; returns (next agents, r_l of each)."""

    def observe(self, state: EnvState, rng: np.random.Generator, k: int, observation: str = "subsample") -> np.ndarray:
        if observation not in OBSERVATIONS:
            raise GameValidationError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        return np.concatenate([self.global_features(state.global_state),
                               self.histogram(state, rng, k, observation)], axis=1).astype(np.float32)


def one_hot(index: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size, dtype=np.float32)[np.asarray(index)]


class TabularPopulationEnv(PopulationEnv):
    """A TabularGame as a PopulationEnv: the population is its count vector (ALGORITHM.md section 7)."""

    def __init__(self, game: TabularGame) -> None:
        self.game = game
        self.name = game.name
        self.n = game.n
        self.gamma = game.gamma
        self.horizon = game.horizon
        self.num_global_actions = game.num_global_actions
        self.num_local_actions = game.num_local_actions
        self.num_bins = game.num_local_states
        self.global_feature_dim = game.num_global_states
        self.local_feature_dim = game.num_global_states + game.num_local_states
        self.config = game.config

    def reset(self, rng: np.random.Generator, batch: int) -> EnvState:
        return EnvState(*sample_initial_states(self.game, rng, batch))

    def global_features(self, global_state: np.ndarray) -> np.ndarray:
        return one_hot(global_state, self.game.num_global_states)

    def histogram(self, state: EnvState, rng: np.random.Generator, k: int, observation: str) -> np.ndarray:
        if observation == "full":
            return (state.population / self.n).astype(np.float32)
        return (hypergeometric_subsample(rng, state.population, k) / k).astype(np.float32)

    def mode(self, state: EnvState) -> np.ndarray:
        return np.argmax(state.population, axis=1)

    def prepare_local(self, local_policy: Any) -> np.ndarray:
        if isinstance(local_policy, np.ndarray):
            return check_local_policy(self.game, local_policy)
        return check_local_policy(self.game, self.tabulate_local(local_policy))

    def tabulate_local(self, local_policy: Any) -> np.ndarray:
        """pi_l[s_l, s_g, a_l] of a policy that acts on features, over every (s_l, s_g)."""
        G, L = self.game.num_global_states, self.game.num_local_states
        g, s = np.meshgrid(np.arange(G), np.arange(L), indexing="ij")
        probs = local_policy.probabilities(self.agent_features(g[:, 0], s).reshape(G * L, -1))
        return np.transpose(probs.reshape(G, L, -1), (1, 0, 2)).astype(np.float64)

    def tabulate_global(self, global_policy: Any, k: int) -> np.ndarray:
        """The action table (G, #count vectors of size k) of a policy that acts on observations."""
        G = self.game.num_global_states
        vectors = CountIndex(k, self.game.num_local_states).all_vectors()
        g = np.repeat(np.arange(G), len(vectors))
        hist = np.tile(vectors / k, (G, 1)).astype(np.float32)
        obs = np.concatenate([self.global_features(g), hist], axis=1)
        return global_policy.act(obs).reshape(G, len(vectors))

    def step(self, state: EnvState, global_action: np.ndarray, local: np.ndarray,
             rng: np.random.Generator) -> tuple[EnvState, np.ndarray]:
        population = CountPopulation(self.game, state.population)
        result = population.step(rng, state.global_state, local)
        reward = self.game.global_reward[state.global_state, global_action] + result.local_reward_mean
        next_global = step_global(self.game, rng, state.global_state, global_action)
        return EnvState(next_global, population.counts), reward

    def agents_reset(self, state: EnvState, rng: np.random.Generator, m: int) -> np.ndarray:
        profile = state.population / self.n
        return inverse_cdf_draw(rng, np.broadcast_to(profile[:, None, :], (len(profile), m, self.num_bins)))

    def agent_features(self, global_state: np.ndarray, agents: np.ndarray) -> np.ndarray:
        g = np.broadcast_to(np.asarray(global_state)[:, None], agents.shape)
        return np.concatenate([one_hot(g, self.game.num_global_states),
                               one_hot(agents, self.game.num_local_states)], axis=-1)

    def agents_step(self, state: EnvState, agents: np.ndarray, actions: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        g = np.broadcast_to(state.global_state[:, None], agents.shape)
        rewards = self.game.local_reward[agents, g, actions]
        return inverse_cdf_draw(rng, self.game.local_transition[agents, g, actions]), rewards

    def table_policy(self, table: np.ndarray) -> TableLocalPolicy:
        """A pi_l[s_l, s_g, a_l] table as a policy over this env's one-hot local features."""
        return TableLocalPolicy(check_local_policy(self.game, table), self.game.num_global_states)


@dataclass
class TableLocalPolicy:
    table: np.ndarray  # (L, G, A)
    num_global_states: int

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        g = np.argmax(features[..., :self.num_global_states], axis=-1)
        s = np.argmax(features[..., self.num_global_states:], axis=-1)
        return self.table[s, g]
