"""Local and global policies as arrays.

A local policy is pi_l[s_l, s_g, a_l] (probabilities). A global policy is a
table of actions indexed by (s_g, rank of the observed count vector); how the
count vector is observed (a fresh k-subsample, or the whole population rounded
to k, for the full-observation reference) is part of the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.marl.counts import CountIndex, num_local_states_for
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population, check_probabilities

OBSERVATIONS = ("subsample", "full")


def uniform_local_policy(game: TabularGame) -> np.ndarray:
    """pi_l(a | s_l, s_g) = 1/|A_l| everywhere: the alternation's starting point."""
    L, G, A = game.num_local_states, game.num_global_states, game.num_local_actions
    return np.full((L, G, A), 1.0 / A)


def greedy_local_policy(q_values: np.ndarray) -> np.ndarray:
    """One-hot policy from Q[s_g, s_l, a_l]; ties to the lowest action index."""
    G, L, A = q_values.shape
    best = np.argmax(q_values, axis=-1)  # (G, L)
    policy = np.zeros((L, G, A))
    policy[np.arange(L)[:, None], np.arange(G)[None, :], best.T] = 1.0
    return policy


def softmax_local_policy(q_values: np.ndarray, temperature: float) -> np.ndarray:
    """Boltzmann policy over Q[s_g, s_l, a_l] at the given temperature (> 0)."""
    if not temperature > 0:
        raise GameValidationError(f"softmax temperature must be > 0, got {temperature}")
    z = (q_values - q_values.max(axis=-1, keepdims=True)) / temperature
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return np.transpose(p, (1, 0, 2)).copy()


def check_local_policy(game: TabularGame, policy: np.ndarray) -> np.ndarray:
    shape = (game.num_local_states, game.num_global_states, game.num_local_actions)
    return check_probabilities("local policy", policy, shape)


@dataclass
class GlobalPolicy:
    """Greedy global policy pi_g(s_g, F) stored as an action table of shape (G, #count vectors)."""

    k: int
    num_local_states: int
    actions: np.ndarray
    observation: str = "subsample"

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATIONS:
            raise GameValidationError(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")
        self.index = CountIndex(self.k, self.num_local_states)
        self.actions = np.asarray(self.actions, dtype=np.int64)
        if self.actions.ndim != 2 or self.actions.shape[1] != self.index.size:
            raise GameValidationError(
                f"a global policy for k={self.k} over {self.num_local_states} local states needs an action "
                f"table of shape (|S_g|, {self.index.size}), got {self.actions.shape}"
            )

    @classmethod
    def from_q(cls, q_values: np.ndarray, k: int, observation: str = "subsample") -> GlobalPolicy:
        """Greedy in Q[s_g, rank(F), a_g]; ties to the lowest action index."""
        L = num_local_states_for(k, q_values.shape[1])
        return cls(k=k, num_local_states=L, actions=np.argmax(q_values, axis=-1), observation=observation)

    @classmethod
    def constant(cls, game: TabularGame, k: int, action: int = 0) -> GlobalPolicy:
        """The 'arbitrary' starting global policy: always the same action."""
        L = game.num_local_states
        width = CountIndex(k, L).size
        return cls(k=k, num_local_states=L, actions=np.full((game.num_global_states, width), action))

    def with_observation(self, observation: str) -> GlobalPolicy:
        return GlobalPolicy(self.k, self.num_local_states, self.actions, observation)

    def act(self, global_state: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Actions for batches of (s_g, observed count vector of size k)."""
        return self.actions[np.asarray(global_state), self.index.rank(counts)]

    def observe(self, rng: np.random.Generator, population_counts: np.ndarray, n: int) -> np.ndarray:
        """The count vector this policy sees of populations given as counts (batch, L)."""
        if self.observation == "full":
            return round_counts(population_counts, self.k)
        check_population(n, self.k)
        return hypergeometric_subsample(rng, population_counts, self.k)


def round_counts(counts: np.ndarray, k: int) -> np.ndarray:
    """Scale count vectors to total `k` by the largest-remainder rule (ties to the lowest index)."""
    counts = np.asarray(counts, dtype=np.int64)
    totals = counts.sum(axis=-1, keepdims=True)
    exact = counts * k / totals
    floor = np.floor(exact).astype(np.int64)
    missing = k - floor.sum(axis=-1)
    remainder = exact - floor
    # stable order: larger remainder first, lower index first among equals
    order = np.argsort(-remainder, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1)
    return floor + (ranks < missing[..., None]).astype(np.int64)


def hypergeometric_subsample(rng: np.random.Generator, counts: np.ndarray, k: int) -> np.ndarray:
    """Count vector of a uniform k-subset drawn without replacement from each population.

    The multivariate hypergeometric draw, done state by state with univariate
    hypergeometric draws (exact, vectorised over the batch).
    """
    counts = np.asarray(counts, dtype=np.int64)
    remaining_pop = counts.sum(axis=-1)
    if np.any(remaining_pop < k):
        raise GameValidationError(f"cannot draw k={k} agents from a population of {remaining_pop.min()}")
    remaining = np.full(counts.shape[:-1], k, dtype=np.int64)
    out = np.zeros_like(counts)
    for s in range(counts.shape[-1] - 1):
        good = counts[..., s]
        bad = remaining_pop - good
        active = remaining > 0
        draw = np.zeros_like(good)
        if np.any(active):
            draw[active] = rng.hypergeometric(good[active], bad[active], remaining[active])
        out[..., s] = draw
        remaining -= draw
        remaining_pop -= good
    out[..., -1] = remaining
    return out
