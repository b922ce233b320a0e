"""Where the alternation starts: several starting pairs, so it can reach more than one equilibrium.

Why: best-response dynamics stop in the basin they start in. On zones, from the paper's
start (uniform robots) the tabular learners end where the robots ignore the dispatcher
for an action bonus; from a start where the robots already follow it, or where the
dispatcher is simple enough that following pays, they reach the equilibrium in which the
robots gather. `run_alternation` runs every start and keeps the best pair by measured
value. None of these uses anything task-specific:

* ``uniform``: robots uniform, G-LEARN first (ALGORITHM.md section 5).
* ``static``: robots best-respond to a global state that never changes (value iteration
  of the local MDP with P_g = identity), G-LEARN first.
* ``greedy``: the global policy greedy in the one-step global reward r_g (ties to the
  lowest action), the robots' best response to it first (L-LEARN first); the pair it
  yields is the start's round 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from altmarl_ros.marl.defaults import START_NAMES
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.llearn import local_value_iteration
from altmarl_ros.marl.policies import GlobalPolicy, greedy_local_policy, uniform_local_policy

DEFAULT_STARTS = START_NAMES


@dataclass
class Start:
    """A starting pair: the robots' policy, and a global policy when the start's first step is L-LEARN."""

    name: str
    local_policy: Any
    global_policy: Any = None


def check_starts(starts: Any) -> tuple[str, ...]:
    """Validate a list of start names (a YAML list or a comma-separated string)."""
    if isinstance(starts, str):
        starts = [name.strip() for name in starts.split(",") if name.strip()]
    starts = tuple(starts)
    unknown = [name for name in starts if name not in START_NAMES]
    if not starts or unknown or len(set(starts)) != len(starts):
        raise GameValidationError(f"starts must be a non-empty list of distinct names from {list(START_NAMES)}, "
                                  f"got {list(starts)}")
    return starts


def static_local_policy(game: TabularGame) -> np.ndarray:
    """The robots' best response if the global state stayed where it is (P_g = identity)."""
    return greedy_local_policy(local_value_iteration(game, np.eye(game.num_global_states)))


def greedy_global_policy(game: TabularGame, k: int) -> GlobalPolicy:
    """argmax_a r_g(s_g, a) whatever the robots do; ties to the lowest action."""
    best = np.argmax(game.global_reward, axis=1)  # (G,)
    policy = GlobalPolicy.constant(game, k, 0)
    policy.actions[:] = best[:, None]
    return policy


def tabular_starts(game: TabularGame, k: int, names: tuple[str, ...]) -> list[Start]:
    """The named starts for a tabular game, in the given order."""
    builders = {
        "uniform": lambda: Start("uniform", uniform_local_policy(game)),
        "static": lambda: Start("static", static_local_policy(game)),
        "greedy": lambda: Start("greedy", uniform_local_policy(game), greedy_global_policy(game, k)),
    }
    return [builders[name]() for name in check_starts(names)]
