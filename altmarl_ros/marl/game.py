"""A validated tabular game of one global agent and `n` exchangeable local agents.

Arrays follow ALGORITHM.md section 1 (G = |S_g|, B = |A_g|, L = |S_l|, A = |A_l|):

* ``global_transition[s_g, a_g, s_g']``            P_g, shape (G, B, G)
* ``local_transition[s_l, s_g, a_l, s_l']``        P_l, shape (L, G, A, L)
* ``global_reward[s_g, a_g]``                       r_g, shape (G, B)
* ``local_reward[s_l, s_g, a_l]``                   r_l, shape (L, G, A)

Local moves use the global state of the same step, s_g(t).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from altmarl_ros.marl.errors import GameValidationError

PROBABILITY_ATOL = 1e-6


def check_probabilities(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return `array` as float64 if it has `shape`, is finite, non-negative and sums to 1 on its last axis."""
    array = np.asarray(array, dtype=np.float64)
    if array.shape != shape:
        raise GameValidationError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise GameValidationError(f"{name} contains NaN or inf at {_first_bad(~np.isfinite(array))}")
    if np.any(array < 0):
        raise GameValidationError(f"{name} has negative probabilities at {_first_bad(array < 0)}")
    sums = array.sum(axis=-1)
    bad = np.abs(sums - 1.0) > PROBABILITY_ATOL
    if np.any(bad):
        where = _first_bad(bad)
        raise GameValidationError(
            f"{name} must sum to 1 over its last axis; the row at {where} sums to {sums[where]:.6g}"
        )
    return array


def check_finite(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Return `array` as float64 if it has `shape` and holds no NaN or inf."""
    array = np.asarray(array, dtype=np.float64)
    if array.shape != shape:
        raise GameValidationError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise GameValidationError(f"{name} contains NaN or inf at {_first_bad(~np.isfinite(array))}")
    return array


def check_population(n: int, k: int | None = None) -> None:
    """Validate the number of agents `n` and, if given, the subsample size `k`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GameValidationError(f"n (number of local agents) must be an integer >= 1, got {n!r}")
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise GameValidationError(f"k (subsample size) must be an integer, got {k!r}")
    if k < 1:
        raise GameValidationError(f"k (subsample size) must be >= 1, got k={k}; valid: 1 <= k <= n={n}")
    if k > n:
        raise GameValidationError(
            f"k={k} exceeds n={n}: the coordinator cannot sample more robots than exist; valid: 1 <= k <= n")


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


@dataclass(frozen=True)
class TabularGame:
    """The game as arrays, validated on construction (see module docstring for layouts)."""

    name: str
    global_transition: np.ndarray
    local_transition: np.ndarray
    global_reward: np.ndarray
    local_reward: np.ndarray
    gamma: float
    n: int
    horizon: int
    init_global: np.ndarray
    init_local_alpha: np.ndarray
    config: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        gt = np.asarray(self.global_transition)
        lt = np.asarray(self.local_transition)
        if gt.ndim != 3:
            raise GameValidationError(f"global_transition must be 3-D (G, B, G), got shape {gt.shape}")
        if lt.ndim != 4:
            raise GameValidationError(f"local_transition must be 4-D (L, G, A, L), got shape {lt.shape}")
        G, B = gt.shape[0], gt.shape[1]
        L, A = lt.shape[0], lt.shape[2]
        setter = object.__setattr__
        setter(self, "global_transition", check_probabilities("global_transition", gt, (G, B, G)))
        setter(self, "local_transition", check_probabilities("local_transition", lt, (L, G, A, L)))
        setter(self, "global_reward", check_finite("global_reward", self.global_reward, (G, B)))
        setter(self, "local_reward", check_finite("local_reward", self.local_reward, (L, G, A)))
        setter(self, "init_global", check_probabilities("init_global", self.init_global, (G,)))
        alpha = check_finite("init_local_alpha", self.init_local_alpha, (L,))
        if np.any(alpha <= 0):
            raise GameValidationError(f"init_local_alpha (Dirichlet concentration) must be > 0, got {alpha}")
        setter(self, "init_local_alpha", alpha)
        gamma = float(self.gamma)
        if not np.isfinite(gamma) or not 0.0 < gamma < 1.0:
            raise GameValidationError(f"gamma must lie in the open interval (0, 1), got {self.gamma!r}")
        setter(self, "gamma", gamma)
        check_population(self.n)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise GameValidationError(f"horizon must be an integer >= 1, got {self.horizon!r}")
        for name in ("global_transition", "local_transition", "global_reward", "local_reward",
                     "init_global", "init_local_alpha"):
            getattr(self, name).setflags(write=False)

    # --- sizes -----------------------------------------------------------------
    @property
    def num_global_states(self) -> int:
        return self.global_transition.shape[0]

    @property
    def num_global_actions(self) -> int:
        return self.global_transition.shape[1]

    @property
    def num_local_states(self) -> int:
        return self.local_transition.shape[0]

    @property
    def num_local_actions(self) -> int:
        return self.local_transition.shape[2]

    # --- quantities under a frozen local policy ----------------------------------
    def local_next_state(self, local_policy: np.ndarray) -> np.ndarray:
        """P(s_l' | s_l, s_g) with the local action drawn from the policy, shape (L, G, L)."""
        return np.einsum("lga,lgam->lgm", local_policy, self.local_transition)

    def expected_local_reward(self, local_policy: np.ndarray) -> np.ndarray:
        """E[r_l(s_l, s_g, a_l)] with a_l drawn from the policy, shape (L, G)."""
        return np.einsum("lga,lga->lg", local_policy, self.local_reward)

    def mean_initial_profile(self) -> np.ndarray:
        """The expected initial local state distribution (mean of the Dirichlet)."""
        return self.init_local_alpha / self.init_local_alpha.sum()

    def with_n(self, n: int) -> TabularGame:
        """The same game with another population size."""
        check_population(n)
        return TabularGame(**{**self.__dict__, "n": int(n)})
