"""Baseline policies on a `PopulationEnv` (numpy only, no torch).

* `RandomGlobalPolicy` — the random dispatcher: a uniform global action each
  step, from its own seeded stream (`altmarl eval --baselines`, the sweeps);
* `UniformLocalPolicy` — robots acting uniformly at random: the fully random
  baseline with the random dispatcher, and the robot policy the deep
  alternation starts from.

They act through the same interface as the learned policies (`act` on
coordinator observations, `probabilities` on local features), so
`marl.rollouts.evaluate_env` runs them by the protocol. The tabular starting
policies (`uniform_local_policy`, `GlobalPolicy.constant`) are tables and live
in `marl.policies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class RandomGlobalPolicy:
    """The random-dispatcher baseline: a uniform action each step, from its own seeded stream."""

    def __init__(self, num_actions: int, k: int, seed: int) -> None:
        self.num_actions, self.k, self.observation = num_actions, k, "subsample"
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.integers(self.num_actions, size=len(obs))


@dataclass
class UniformLocalPolicy:
    num_actions: int

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return np.full(np.shape(features)[:-1] + (self.num_actions,), 1.0 / self.num_actions)
