"""The `zones` task (TASKS.md section 1): a dispatcher and robots on a ring of Z zones.

Every number below is a config default; `build_game` reads them all from the
config, so Z, the logits and the rewards can be varied without code changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from altmarl_ros.marl import budget
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


def _softmax_in_place(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed in the logits' own buffer (no full-size temporaries)."""
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def build_bytes(zones: int) -> int:
    """Peak of build_game: the game's arrays, the validation's temporaries, the broadcast logit terms."""
    Z, A = zones, len(LOCAL_ACTIONS)
    terms = 4 * budget.F8 * (Z * A * Z + Z * Z)  # the (Z, 1, A, Z) and (1, Z, 1, Z) terms of the local logits
    return budget.game_arrays_bytes(Z, Z, Z, A) + budget.game_validation_bytes(Z, Z, Z, A) + terms + budget.SMALL_BYTES


def build_game(config: ZonesConfig) -> TabularGame:
    """The zones game as validated arrays.

    The index grids broadcast (s along axis 0, g or a along 1, ...) rather than being
    materialised, and the softmax runs in place: the peak is about the game's arrays
    (`build_bytes`), checked against the memory budget before anything is allocated.
    """
    Z = config.zones
    if Z < 2:
        raise GameValidationError(f"zones must be >= 2, got {Z}")
    if len(config.action_bonus) != len(LOCAL_ACTIONS):
        raise GameValidationError(
            f"action_bonus needs one value per local action {LOCAL_ACTIONS}, got {config.action_bonus}"
        )
    budget.check(build_bytes(Z), f"the zones game with zones={Z} (P_l has {Z}x{Z}x{len(LOCAL_ACTIONS)}x{Z} "
                 f"entries: {budget.format_bytes(budget.F8 * Z * Z * len(LOCAL_ACTIONS) * Z)})",
                 "reduce zones")
    zone = np.arange(Z)
    s, a, nxt = zone[:, None, None], zone[None, :, None], zone[None, None, :]
    global_logits = config.global_target_logit * (nxt == a) + config.global_stay_logit * (nxt == s)
    global_transition = _softmax_in_place(global_logits.astype(float, copy=False))  # (G, B=Z, G)
    del global_logits

    actions = np.arange(len(LOCAL_ACTIONS))
    s, g, act, nxt = (zone[:, None, None, None], zone[None, :, None, None], actions[None, None, :, None],
                      zone[None, None, None, :])
    up, down = LOCAL_ACTIONS.index("up"), LOCAL_ACTIONS.index("down")
    local_logits = (
        config.local_stay_logit * (nxt == s)
        + config.local_move_logit * ((act == up) & (nxt == (s + 1) % Z))
        + config.local_move_logit * ((act == down) & (nxt == (s - 1) % Z))
        + config.local_attract_logit * (nxt == g)
    )
    local_transition = _softmax_in_place(local_logits.astype(float, copy=False))  # (L, G, A, L)
    del local_logits

    global_reward = np.full((Z, Z), config.global_reward)
    s, g, act = zone[:, None, None], zone[None, :, None], actions[None, None, :]
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
