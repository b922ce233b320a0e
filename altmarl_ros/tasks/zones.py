"""The `zones` task (TASKS.md section 1): a dispatcher and robots on a ring of Z zones.

Every number below is a config default; `build_game` reads them all from the
config, so Z, the logits and the rewards can be varied without code changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame

LOCAL_ACTIONS = ("stay", "up", "down")


@dataclass(frozen=True)
class ZonesConfig:
    zones: int = 5
    n: int = 1000
    gamma: float = 0.95
    horizon: int = 50
    # global: P_g(s'|s,a) ∝ exp(target_logit·[s'=a] + stay_logit·[s'=s])
    global_target_logit: float = 3.0
    global_stay_logit: float = 0.5
    # local: P_l(s'|s,g,a) ∝ exp(stay·[s'=s] + move·[moved as asked] + attract·[s'=g])
    local_stay_logit: float = 3.5
    local_move_logit: float = 1.5
    local_attract_logit: float = 0.3
    global_reward: float = 1.0
    reward_at_dispatcher: float = 10.0
    reward_distance_scale: float = 2.0
    action_bonus: tuple[float, ...] = (0.0, 0.5, -0.3)
    profile_concentration: float = 0.3


def circular_distance(a: np.ndarray, b: np.ndarray, zones: int) -> np.ndarray:
    d = np.abs(np.asarray(a) - np.asarray(b)) % zones
    return np.minimum(d, zones - d)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def build_game(config: ZonesConfig) -> TabularGame:
    """The zones game as validated arrays."""
    Z = config.zones
    if Z < 2:
        raise GameValidationError(f"zones must be >= 2, got {Z}")
    if len(config.action_bonus) != len(LOCAL_ACTIONS):
        raise GameValidationError(
            f"action_bonus needs one value per local action {LOCAL_ACTIONS}, got {config.action_bonus}"
        )
    zone = np.arange(Z)
    s, a, nxt = np.meshgrid(zone, zone, zone, indexing="ij")
    global_logits = config.global_target_logit * (nxt == a) + config.global_stay_logit * (nxt == s)
    global_transition = _softmax(global_logits.astype(float))  # (G, B=Z, G)

    s, g, act, nxt = np.meshgrid(zone, zone, np.arange(len(LOCAL_ACTIONS)), zone, indexing="ij")
    up, down = LOCAL_ACTIONS.index("up"), LOCAL_ACTIONS.index("down")
    local_logits = (
        config.local_stay_logit * (nxt == s)
        + config.local_move_logit * ((act == up) & (nxt == (s + 1) % Z))
        + config.local_move_logit * ((act == down) & (nxt == (s - 1) % Z))
        + config.local_attract_logit * (nxt == g)
    )
    local_transition = _softmax(local_logits.astype(float))  # (L, G, A, L)

    global_reward = np.full((Z, Z), config.global_reward)
    s, g, act = np.meshgrid(zone, zone, np.arange(len(LOCAL_ACTIONS)), indexing="ij")
    distance = circular_distance(s, g, Z)
    base = np.where(distance == 0, config.reward_at_dispatcher, config.reward_distance_scale / (1.0 + distance))
    local_reward = base + np.asarray(config.action_bonus)[act]

    return TabularGame(
        name="zones",
        global_transition=global_transition,
        local_transition=local_transition,
        global_reward=global_reward,
        local_reward=local_reward,
        gamma=config.gamma,
        n=config.n,
        horizon=config.horizon,
        init_global=np.full(Z, 1.0 / Z),
        init_local_alpha=np.full(Z, config.profile_concentration),
        config=asdict(config),
    )
