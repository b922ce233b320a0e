"""Where a robot or the leader goes for an action: the one rule the episode runner, robots and coordinator share.

With `transition_noise: model` the destination is drawn from the task's P_l / P_g (so physics
executes the tabular model, failures included); with `none` a robot moves one zone along
`ZONE_MOVES` and the leader goes to the zone its action names. Every draw is one uniform per
body through `population.inverse_cdf_draw`, so a robot node, a batched fleet and the episode
runner consume their generators identically.
"""

from __future__ import annotations

import numpy as np

from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.population import inverse_cdf_draw

ZONE_MOVES = np.array([0, 1, -1])  # stay, up, down (tasks.zones.LOCAL_ACTIONS)


def local_actions(rng: np.random.Generator, local_policy: np.ndarray, zones: np.ndarray,
                  global_state: int) -> np.ndarray:
    """One local action per robot in `zones`, drawn from pi_l(. | zone, s_g)."""
    return inverse_cdf_draw(rng, local_policy[zones, global_state])


def robot_destinations(rng: np.random.Generator, game: TabularGame, transition_noise: str, zones: np.ndarray,
                       global_state: int, actions: np.ndarray) -> np.ndarray:
    """The zone each robot heads for after taking `actions` from `zones` (see the module docstring)."""
    if transition_noise == "model":
        return inverse_cdf_draw(rng, game.local_transition[zones, global_state, actions])
    return (zones + ZONE_MOVES[actions]) % game.num_local_states


def leader_destination(rng: np.random.Generator, game: TabularGame, transition_noise: str, global_state: int,
                       global_action: int) -> int:
    """The zone the leader heads for after the global action (see the module docstring)."""
    if transition_noise == "model":
        return int(inverse_cdf_draw(rng, game.global_transition[global_state, global_action][None, :])[0])
    return int(global_action)
