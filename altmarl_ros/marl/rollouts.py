"""Rollouts on a `PopulationEnv`: the evaluation protocol and the representative robot's value.

Same protocol as `marl.evaluation` (TASKS.md section 1): per evaluation seed,
`rollouts` episodes from np.random.default_rng(seed); the mean and standard
deviation of the per-seed means of the discounted system return, and the
mode-tracking accuracy. Seeding each evaluation seed the same way for every
policy gives common random numbers, so paired differences are tight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from altmarl_ros.marl.envs import PopulationEnv
from altmarl_ros.marl.evaluation import EvaluationReport, evaluate_by_seed
from altmarl_ros.marl.population import inverse_cdf_draw


@dataclass
class EnvRollout:
    discounted_return: np.ndarray  # (batch,) system return
    mode_hits: np.ndarray  # (batch, horizon)
    agent_return: np.ndarray | None  # (batch, m) representative agents' discounted r_l, if any


def rollout_env(env: PopulationEnv, global_policy: Any, local_policy: Any, rng: np.random.Generator, batch: int,
                agent_policy: Any = None, agents: int = 0) -> EnvRollout:
    """`batch` episodes; the coordinator sees a fresh k-subsample each step (or the whole population).

    With `agent_policy`, `agents` representative robots per episode act with it
    in the MDP induced by (global_policy, local_policy) and their returns are kept.
    """
    prepared = env.prepare_local(local_policy)
    state = env.reset(rng, batch)
    reps = env.agents_reset(state, rng, agents) if agent_policy is not None else None
    returns = np.zeros(batch)
    agent_returns = np.zeros((batch, agents)) if reps is not None else None
    hits = np.zeros((batch, env.horizon), dtype=bool)
    discount = 1.0
    for t in range(env.horizon):
        action = global_policy.act(env.observe(state, rng, global_policy.k, global_policy.observation))
        hits[:, t] = action == env.mode(state)
        if reps is not None:
            probs = agent_policy.probabilities(env.agent_features(state.global_state, reps))
            reps, agent_reward = env.agents_step(state, reps, inverse_cdf_draw(rng, probs), rng)
            agent_returns += discount * agent_reward
        state, reward = env.step(state, action, prepared, rng)
        returns += discount * reward
        discount *= env.gamma
    return EnvRollout(returns, hits, agent_returns)


def evaluate_env(env: PopulationEnv, global_policy: Any, local_policy: Any, seeds: list[int],
                 rollouts: int) -> EvaluationReport:
    """The evaluation protocol on any PopulationEnv."""
    return evaluate_by_seed(lambda seed: rollout_env(env, global_policy, local_policy, np.random.default_rng(seed),
                                                     rollouts), seeds, rollouts, env.n)


def representative_values(env: PopulationEnv, global_policy: Any, local_policy: Any, agent_policy: Any,
                          seeds: list[int], rollouts: int, agents: int) -> list[float]:
    """Per seed, the mean discounted return of a robot that deviates to `agent_policy` (others keep local_policy)."""
    values = []
    for seed in seeds:
        run = rollout_env(env, global_policy, local_policy, np.random.default_rng(seed), rollouts,
                          agent_policy=agent_policy, agents=agents)
        values.append(float(run.agent_return.mean()))
    return values
