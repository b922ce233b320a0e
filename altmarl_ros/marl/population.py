"""Population simulators, vectorised over a batch of independent rollouts.

* `CountPopulation` (ALGORITHM.md section 7): agents are exchangeable, so the
  population is its count vector; a step splits each state's count over actions
  and then over next states by multinomial draws. Cost per step is
  O(|S_l|^2 |A_l|) per rollout, whatever n is.
* `AgentPopulation`: one state per agent, for robots that are individuals.

Both share one interface, so evaluation and tests can swap them. Local moves
use the global state of the same step, s_g(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.policies import hypergeometric_subsample


@dataclass
class StepResult:
    """What one step of a batch of rollouts produced."""

    local_reward_mean: np.ndarray  # (batch,) (1/n) sum_i r_l(s_i, s_g, a_i)
    action_counts: np.ndarray  # (batch, L, A) how many agents in each state took each action


def sample_initial_states(game: TabularGame, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """s_g ~ init_global; profile p ~ Dirichlet(alpha); counts ~ Multinomial(n, p). Returns (g, counts)."""
    global_state = inverse_cdf_draw(rng, game.init_global, size=batch)
    profiles = rng.dirichlet(game.init_local_alpha, size=batch)
    counts = rng.multinomial(game.n, profiles)
    return global_state.astype(np.int64), counts.astype(np.int64)


def step_global(game: TabularGame, rng: np.random.Generator, global_state: np.ndarray,
                global_action: np.ndarray) -> np.ndarray:
    """Draw s_g' ~ P_g(. | s_g, a_g) for each rollout (inverse CDF)."""
    return inverse_cdf_draw(rng, game.global_transition[global_state, global_action]).astype(np.int64)


class CountPopulation:
    """Exact-in-distribution simulation on count vectors (batch, L)."""

    def __init__(self, game: TabularGame, counts: np.ndarray) -> None:
        self.game = game
        L, A = game.num_local_states, game.num_local_actions
        batch = len(counts) if np.ndim(counts) == 2 else 1
        budget.check(budget.count_population_step_bytes(batch, L, A),
                     f"a step of {batch} count-based populations over {L} local states "
                     f"(P_l rows per rollout: {batch}x{L}x{A}x{L})", "reduce the rollouts or zones")
        self.counts = np.asarray(counts, dtype=np.int64).copy()
        if self.counts.ndim != 2 or self.counts.shape[1] != game.num_local_states:
            raise GameValidationError(
                f"population counts must have shape (batch, {game.num_local_states}), got {self.counts.shape}"
            )
        if np.any(self.counts.sum(axis=1) != game.n):
            raise GameValidationError(f"population counts must sum to n={game.n}")

    def state_counts(self) -> np.ndarray:
        return self.counts

    def subsample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """Counts of a fresh uniform k-subset (multivariate hypergeometric)."""
        check_population(self.game.n, k)
        return hypergeometric_subsample(rng, self.counts, k)

    def step(self, rng: np.random.Generator, global_state: np.ndarray, local_policy: np.ndarray) -> StepResult:
        game = self.game
        action_probs = np.transpose(local_policy[:, global_state, :], (1, 0, 2))  # (batch, L, A)
        action_counts = rng.multinomial(self.counts, action_probs)  # (batch, L, A)
        rewards = game.local_reward[:, global_state, :].transpose(1, 0, 2)  # (batch, L, A)
        local_reward_mean = (action_counts * rewards).sum(axis=(1, 2)) / game.n
        next_probs = np.transpose(game.local_transition[:, global_state], (1, 0, 2, 3))  # (batch, L, A, L)
        self.counts = rng.multinomial(action_counts, next_probs).sum(axis=(1, 2))
        return StepResult(local_reward_mean, action_counts)


class AgentPopulation:
    """One state per agent, shape (batch, n); the subsample is a set of agent ids."""

    def __init__(self, game: TabularGame, states: np.ndarray) -> None:
        self.game = game
        _check_agents(game, len(states) if np.ndim(states) == 2 else 1)
        self.states = np.asarray(states, dtype=np.int64).copy()
        if self.states.ndim != 2 or self.states.shape[1] != game.n:
            raise GameValidationError(f"agent states must have shape (batch, n={game.n}), got {self.states.shape}")
        if np.any((self.states < 0) | (self.states >= game.num_local_states)):
            raise GameValidationError(f"agent states must lie in [0, {game.num_local_states})")

    @classmethod
    def from_counts(cls, game: TabularGame, rng: np.random.Generator, counts: np.ndarray) -> AgentPopulation:
        """Agents laid out from counts, in a random order per rollout."""
        _check_agents(game, len(counts))
        states = np.stack([rng.permutation(np.repeat(np.arange(game.num_local_states), row)) for row in counts])
        return cls(game, states)

    def state_counts(self) -> np.ndarray:
        L = self.game.num_local_states
        offsets = np.arange(len(self.states))[:, None] * L
        return np.bincount((self.states + offsets).ravel(), minlength=len(self.states) * L).reshape(-1, L)

    def sample_ids(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """A fresh uniform k-subset of agent ids per rollout, without replacement, shape (batch, k)."""
        check_population(self.game.n, k)
        keys = rng.random(self.states.shape)
        return np.argpartition(keys, k - 1, axis=1)[:, :k] if k < self.game.n else np.argsort(keys, axis=1)

    def subsample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        ids = self.sample_ids(rng, k)
        sampled = np.take_along_axis(self.states, ids, axis=1)
        L = self.game.num_local_states
        return (sampled[..., None] == np.arange(L)).sum(axis=1)

    def step(self, rng: np.random.Generator, global_state: np.ndarray, local_policy: np.ndarray) -> StepResult:
        game = self.game
        g = global_state[:, None]
        actions = inverse_cdf_draw(rng, local_policy[self.states, g])  # (batch, n)
        L, A = game.num_local_states, game.num_local_actions
        local_reward_mean = game.local_reward[self.states, g, actions].mean(axis=1)
        flat = (np.arange(len(self.states))[:, None] * L + self.states) * A + actions
        action_counts = np.bincount(flat.ravel(), minlength=len(self.states) * L * A).reshape(-1, L, A)
        self.states = inverse_cdf_draw(rng, game.local_transition[self.states, g, actions])
        return StepResult(local_reward_mean, action_counts)


def _check_agents(game: TabularGame, batch: int) -> None:
    L, A = game.num_local_states, game.num_local_actions
    budget.check(budget.agent_population_bytes(batch, game.n, L, A),
                 f"{batch} per-agent populations of n={game.n} robots", "reduce the rollouts or n")


def inverse_cdf_draw(rng: np.random.Generator, probs: np.ndarray,
                     size: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Categorical draws by inverse CDF: every draw of a state, action or zone in the package goes here.

    Without `size`: one draw per row of `probs` (last axis), one uniform per row against its CDF.
    With `size`: `probs` is one distribution and `size` draws are taken from it, exactly as numpy's
    `Generator.choice(len(probs), size, p=probs)` takes them (the same uniforms against the same
    normalised CDF), so seeded runs that used `choice` keep their numbers.
    """
    if size is None:
        cdf = np.cumsum(probs, axis=-1)
        u = rng.random(probs.shape[:-1])[..., None]
        return np.minimum((u >= cdf[..., :-1]).sum(axis=-1), probs.shape[-1] - 1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1:
        raise ValueError(f"draws of a given size need one distribution (1-D probs), got shape {probs.shape}")
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int64)
