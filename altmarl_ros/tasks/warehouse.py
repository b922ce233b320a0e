"""The `warehouse` task (TASKS.md section 2): continuous states, for function approximation.

n robots on the segment [low, high]; the dispatcher steers a resource centre
s_g to one of the targets tau (by default the centres of 5 equal bins):

    s_g' = clip(s_g + gain (tau[a_g] - s_g) + N(0, global_noise^2))
    s_i' = clip(s_i + move[a_i] + N(0, local_noise^2))
    r_g  = global_scale exp(-(s_g - tau[a_g])^2 / (2 global_width^2))        at the current s_g
    r_l  = local_scale exp(-(s_i - s_g)^2 / (2 local_width^2)) - move_cost |move[a_i]|

Reset: s_g ~ U(init_low, init_high); two distinct bins; a `main_fraction` of the
robots ~ N(tau_main, cluster_std^2), the rest ~ N(tau_second, cluster_std^2),
clipped. The coordinator observes s_g and the normalised bin histogram of its
k-subsample; a robot observes (s_g, s_i). Features are positions divided by the
half-width of the segment. Every number is a `WarehouseConfig` default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.envs import EnvState, PopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import check_population
from altmarl_ros.marl.population import inverse_cdf_draw

LOCAL_ACTIONS = ("stay", "right", "left")


@dataclass(frozen=True)
class WarehouseConfig:
    n: int = 500
    gamma: float = 0.95
    horizon: int = 50
    low: float = -2.0
    high: float = 2.0
    targets: tuple[float, ...] = (-1.6, -0.8, 0.0, 0.8, 1.6)
    global_gain: float = 0.6
    global_noise: float = 0.08
    local_moves: tuple[float, ...] = (0.0, 0.05, -0.05)
    local_noise: float = 0.04
    global_reward_scale: float = 5.0
    global_reward_width: float = 0.30
    local_reward_scale: float = 10.0
    local_reward_width: float = 0.20
    move_cost: float = 5.0
    init_global_low: float = -1.0
    init_global_high: float = 1.0
    main_fraction: float = 0.55
    cluster_std: float = 0.18
    bins: int = 5


def validate(config: WarehouseConfig) -> None:
    check_population(config.n)
    if not config.low < config.high:
        raise GameValidationError(f"low must be < high, got [{config.low}, {config.high}]")
    if len(config.targets) < 2:
        raise GameValidationError(f"targets needs at least 2 positions (one per dispatcher action), got "
                                  f"{config.targets}")
    if any(not config.low <= t <= config.high for t in config.targets):
        raise GameValidationError(f"targets {config.targets} must lie in [low, high] = [{config.low}, {config.high}]")
    if len(config.local_moves) < 1:
        raise GameValidationError("local_moves needs at least one move")
    for name in ("global_noise", "local_noise", "cluster_std", "move_cost"):
        if not getattr(config, name) >= 0:
            raise GameValidationError(f"{name} must be >= 0, got {getattr(config, name)}")
    for name in ("global_reward_width", "local_reward_width"):
        if not getattr(config, name) > 0:
            raise GameValidationError(f"{name} must be > 0, got {getattr(config, name)}")
    if not 0.0 < config.gamma < 1.0:
        raise GameValidationError(f"gamma must lie in (0, 1), got {config.gamma}")
    if config.horizon < 1 or config.bins < 1:
        raise GameValidationError(f"horizon and bins must be >= 1, got {config.horizon}, {config.bins}")
    if not 0.0 <= config.main_fraction <= 1.0:
        raise GameValidationError(f"main_fraction must lie in [0, 1], got {config.main_fraction}")
    if config.bins < 2:
        raise GameValidationError(f"the reset draws two distinct bins, so bins must be >= 2, got {config.bins}")
    if not config.low <= config.init_global_low <= config.init_global_high <= config.high:
        raise GameValidationError("need low <= init_global_low <= init_global_high <= high")


class WarehouseEnv(PopulationEnv):
    """Per-robot positions (batch, n); robots' actions come from a policy over (s_g, s_i) features."""

    def __init__(self, config: WarehouseConfig) -> None:
        validate(config)
        self.c = config
        self.name = "warehouse"
        self.n, self.gamma, self.horizon = config.n, config.gamma, config.horizon
        self.targets = np.asarray(config.targets, dtype=np.float64)
        self.moves = np.asarray(config.local_moves, dtype=np.float64)
        self.num_global_actions = len(self.targets)
        self.num_local_actions = len(self.moves)
        self.num_bins = config.bins
        self.global_feature_dim = 1
        self.local_feature_dim = 2
        self.half_width = (config.high - config.low) / 2
        self.centre = (config.high + config.low) / 2
        self.bin_centres = config.low + (np.arange(config.bins) + 0.5) * (config.high - config.low) / config.bins
        self.state_bounds = (config.low, config.high)  # every position is clipped to the segment
        self.config = asdict(config)

    # --- observations -------------------------------------------------------------------------
    def _normalise(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x) - self.centre) / self.half_width).astype(np.float32)

    def global_features(self, global_state: np.ndarray) -> np.ndarray:
        return self._normalise(global_state)[:, None]

    def bin_of(self, x: np.ndarray) -> np.ndarray:
        c = self.c
        return np.clip(((x - c.low) / (c.high - c.low) * c.bins).astype(np.int64), 0, c.bins - 1)

    def _bin_counts(self, positions: np.ndarray) -> np.ndarray:
        bins, rows = self.bin_of(positions), len(positions)
        flat = (np.arange(rows)[:, None] * self.num_bins + bins).ravel()
        return np.bincount(flat, minlength=rows * self.num_bins).reshape(rows, self.num_bins)

    def histogram(self, state: EnvState, rng: np.random.Generator, k: int, observation: str) -> np.ndarray:
        if observation == "full":
            return (self._bin_counts(state.population) / self.n).astype(np.float32)
        self.check_k(k)
        keys = rng.random(state.population.shape)
        ids = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < self.n else np.arange(self.n)[None].repeat(
            len(keys), 0)
        return (self._bin_counts(np.take_along_axis(state.population, ids, axis=1)) / k).astype(np.float32)

    def mode(self, state: EnvState) -> np.ndarray:
        return np.argmax(self._bin_counts(state.population), axis=1)

    # --- dynamics -----------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator, batch: int) -> EnvState:
        c = self.c
        budget.check(budget.warehouse_rollout_bytes(batch, self.n),
                     f"{batch} warehouse rollouts of n={self.n} robots (positions, features and the robots' policy "
                     "per robot)", "reduce n or the rollouts")
        global_state = rng.uniform(c.init_global_low, c.init_global_high, size=batch)
        first = rng.integers(c.bins, size=batch)
        second = (first + 1 + rng.integers(c.bins - 1, size=batch)) % c.bins  # a distinct bin, uniformly
        main = int(round(c.main_fraction * self.n))
        centres = np.where(np.arange(self.n)[None, :] < main, self.bin_centres[first][:, None],
                           self.bin_centres[second][:, None])
        positions = np.clip(centres + c.cluster_std * rng.standard_normal((batch, self.n)), c.low, c.high)
        return EnvState(global_state, positions)

    def prepare_local(self, local_policy: Any) -> Any:
        if not hasattr(local_policy, "probabilities"):
            raise GameValidationError(
                f"the warehouse task needs a local policy over (s_g, s_i) features (a network), got "
                f"{type(local_policy).__name__}")
        return local_policy

    def _local_reward(self, global_state: np.ndarray, positions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        c = self.c
        near = np.exp(-((positions - global_state[:, None]) ** 2) / (2 * c.local_reward_width ** 2))
        return c.local_reward_scale * near - c.move_cost * np.abs(self.moves[actions])

    def _move(self, rng: np.random.Generator, positions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        c = self.c
        noise = c.local_noise * rng.standard_normal(positions.shape)
        return np.clip(positions + self.moves[actions] + noise, c.low, c.high)

    def step(self, state: EnvState, global_action: np.ndarray, local: Any,
             rng: np.random.Generator) -> tuple[EnvState, np.ndarray]:
        c = self.c
        g, x = state.global_state, state.population
        actions = inverse_cdf_draw(rng, local.probabilities(self.agent_features(g, x)))
        target = self.targets[global_action]
        global_reward = c.global_reward_scale * np.exp(-((g - target) ** 2) / (2 * c.global_reward_width ** 2))
        reward = global_reward + self._local_reward(g, x, actions).mean(axis=1)
        next_g = np.clip(g + c.global_gain * (target - g) + c.global_noise * rng.standard_normal(len(g)),
                         c.low, c.high)
        return EnvState(next_g, self._move(rng, x, actions)), reward

    # --- representative robots ----------------------------------------------------------------
    def agents_reset(self, state: EnvState, rng: np.random.Generator, m: int) -> np.ndarray:
        picks = rng.integers(self.n, size=(len(state.population), m))
        return np.take_along_axis(state.population, picks, axis=1)

    def agent_features(self, global_state: np.ndarray, agents: np.ndarray) -> np.ndarray:
        g = np.broadcast_to(self._normalise(global_state)[:, None], agents.shape)
        return np.stack([g, self._normalise(agents)], axis=-1)

    def agents_step(self, state: EnvState, agents: np.ndarray, actions: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        rewards = self._local_reward(state.global_state, agents, actions)
        return self._move(rng, agents, actions), rewards


def build_env(config: WarehouseConfig) -> WarehouseEnv:
    return WarehouseEnv(config)
