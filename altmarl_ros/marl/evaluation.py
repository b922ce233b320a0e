"""Rollouts of a policy pair on the count-based population, and the evaluation protocol.

Protocol (TASKS.md section 1): for each evaluation seed, `rollouts` episodes of
the task's horizon from its initial distribution; report the mean and standard
deviation of the per-seed means of the discounted system return, and the
mode-tracking accuracy (fraction of steps where a_g is the zone holding most of
the whole population, ties to the lowest index). Seeding each evaluation seed
the same way for every policy gives common random numbers for comparisons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.defaults import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy
from altmarl_ros.marl.population import CountPopulation, sample_initial_states, step_global


@dataclass
class RolloutBatch:
    discounted_return: np.ndarray  # (batch,)
    mode_hits: np.ndarray  # (batch, horizon) bool
    global_states: np.ndarray  # (batch, horizon + 1)
    global_actions: np.ndarray  # (batch, horizon)
    profiles: np.ndarray | None = None  # (batch, horizon, L) population fractions, if recorded


def rollout(game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray,
            rng: np.random.Generator, batch: int, horizon: int | None = None,
            record_profiles: bool = False) -> RolloutBatch:
    """Run `batch` independent episodes at once; the coordinator sees a fresh k-subsample each step."""
    horizon = game.horizon if horizon is None else horizon
    L, A = game.num_local_states, game.num_local_actions
    budget.check(budget.rollout_bytes(batch, horizon, L, A, record_profiles),
                 f"{batch} rollouts of {horizon} steps over {L} local states", "reduce the rollouts per seed or zones")
    global_state, counts = sample_initial_states(game, rng, batch)
    population = CountPopulation(game, counts)
    returns = np.zeros(batch)
    mode_hits = np.zeros((batch, horizon), dtype=bool)
    states = np.zeros((batch, horizon + 1), dtype=np.int64)
    actions = np.zeros((batch, horizon), dtype=np.int64)
    profiles = np.zeros((batch, horizon, game.num_local_states)) if record_profiles else None
    discount = 1.0
    for t in range(horizon):
        counts = population.state_counts()
        observed = global_policy.observe(rng, counts, game.n)
        action = global_policy.act(global_state, observed)
        step = population.step(rng, global_state, local_policy)
        returns += discount * (game.global_reward[global_state, action] + step.local_reward_mean)
        mode_hits[:, t] = action == np.argmax(counts, axis=1)
        states[:, t], actions[:, t] = global_state, action
        if profiles is not None:
            profiles[:, t] = counts / game.n
        global_state = step_global(game, rng, global_state, action)
        discount *= game.gamma
    states[:, horizon] = global_state
    return RolloutBatch(returns, mode_hits, states, actions, profiles)


@dataclass
class EvaluationReport:
    return_mean: float
    return_std: float  # std of the per-seed means
    mode_accuracy: float
    per_seed_returns: list[float]
    per_seed_mode_accuracy: list[float]
    seeds: list[int]
    rollouts: int
    n: int
    seconds: float
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def evaluate(game: TabularGame, global_policy: GlobalPolicy, local_policy: np.ndarray,
             seeds: tuple[int, ...] | list[int] = DEFAULT_EVAL_SEEDS,
             rollouts: int = DEFAULT_ROLLOUTS) -> EvaluationReport:
    """The evaluation protocol; each seed's episodes come from np.random.default_rng(seed)."""
    return evaluate_by_seed(lambda seed: rollout(game, global_policy, local_policy, np.random.default_rng(seed),
                                                 rollouts), seeds, rollouts, game.n)


def evaluate_by_seed(run_seed, seeds: tuple[int, ...] | list[int], rollouts: int, n: int) -> EvaluationReport:
    """The protocol's statistics over `run_seed(seed)` batches (anything with discounted_return and mode_hits)."""
    start = time.perf_counter()
    per_seed_returns, per_seed_modes = [], []
    for seed in seeds:
        batch = run_seed(seed)
        per_seed_returns.append(float(batch.discounted_return.mean()))
        per_seed_modes.append(float(batch.mode_hits.mean()))
    returns = np.array(per_seed_returns)
    return EvaluationReport(
        return_mean=float(returns.mean()),
        return_std=float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
        mode_accuracy=float(np.mean(per_seed_modes)),
        per_seed_returns=per_seed_returns,
        per_seed_mode_accuracy=per_seed_modes,
        seeds=list(seeds),
        rollouts=rollouts,
        n=n,
        seconds=time.perf_counter() - start,
    )
