"""The real federated problem shared by the `federated` game, its check and its calibration (numpy).

`federated.py` (the game), `federated_check.py` (learned policies vs fixed
step sizes on this problem) and `federated_calibration.py` (the game's
numbers measured on it) all import from here and never from one another's
private names; this module imports none of them:

    federated_problem  <-  federated_check
                       <-  federated_calibration  <-  federated
                       <-  federated

What lives here: the client actions, the game's (q, e) -> s_g index, the
problem's config (`FederatedCheckConfig`), and the pieces of one run on it:
`make_problem` (heterogeneous quadratic clients, x_0 = 0, the clients'
initial models), `loss` (the true global loss F), `prox_point` (the update a
fully synced client would send), `drift_levels`, `quality_level`,
`local_training` and `aggregate`. The problem and its numbers are described
in federated_check.py's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.marl.population import inverse_cdf_draw

LOCAL_ACTIONS = ("skip", "light", "heavy")


def global_state_index(quality: np.ndarray | int, step_level: np.ndarray | int, num_steps: int) -> np.ndarray:
    """s_g = q * E + e: the one index a global state has in the game's arrays."""
    return np.asarray(quality) * num_steps + np.asarray(step_level)


@dataclass(frozen=True)
class FederatedCheckConfig:
    n_clients: int = 100
    dim: int = 10
    rounds: int = 50
    curvature_min: float = 0.5
    curvature_max: float = 2.0
    initial_distance: float = 3.0
    heterogeneity: float = 0.3  # spread of the client optima; 1.0 is a harder regime (see federated_check.py)
    prox: float = 1.0
    local_lr: float = 0.05
    local_steps: tuple[int, ...] = (0, 2, 10)  # skip, light, heavy
    drift_thresholds: tuple[float, ...] = (0.25, 0.5, 1.0)  # drift / R0 -> level (D - 1 values)
    quality_thresholds: tuple[float, ...] = (0.5, 0.2, 0.05, 0.01)  # excess-loss ratio -> level (Q - 1 values)
    initial_drift: tuple[float, ...] = (0.1, 0.35, 0.75, 1.5)  # drift / R0 given to a client of each level
    profile_concentration: float = 0.3  # initial drift profile ~ Dirichlet
    initial_step_level: int = 0


@dataclass
class Problem:
    A: np.ndarray  # (n, dim) diagonal curvatures
    c: np.ndarray  # (n, dim) client optima
    x_star: np.ndarray
    loss_star: float
    loss_0: float
    r0: float
    y0: np.ndarray  # (n, dim) initial client models


def make_problem(cfg: FederatedCheckConfig, num_local_states: int, rng: np.random.Generator) -> Problem:
    """One problem: clients' quadratics, the optimum, R0 and the initial client models (drift profile over
    `num_local_states` levels ~ Dirichlet(profile_concentration))."""
    n, dim = cfg.n_clients, cfg.dim
    A = rng.uniform(cfg.curvature_min, cfg.curvature_max, size=(n, dim))
    direction = rng.standard_normal(dim)
    mean = cfg.initial_distance * direction / np.linalg.norm(direction)
    c = mean + cfg.heterogeneity * rng.standard_normal((n, dim))
    x_star = (A * c).sum(axis=0) / A.sum(axis=0)
    x0 = np.zeros(dim)
    loss_star, loss_0 = loss(A, c, x_star), loss(A, c, x0)
    fresh0 = prox_point(A, c, x0, cfg.prox)
    r0 = float(np.linalg.norm(fresh0 - x0, axis=1).mean())
    profile = rng.dirichlet(np.full(num_local_states, cfg.profile_concentration))
    levels = inverse_cdf_draw(rng, profile, size=n)
    unit = rng.standard_normal((n, dim))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    y0 = fresh0 + r0 * np.asarray(cfg.initial_drift)[levels, None] * unit
    return Problem(A, c, x_star, loss_star, loss_0, r0, y0)


def loss(A: np.ndarray, c: np.ndarray, x: np.ndarray) -> float:
    """The true global loss F(x) = mean_i 0.5 (x - c_i)^T A_i (x - c_i)."""
    return float(0.5 * (A * (x - c) ** 2).sum(axis=1).mean())


def prox_point(A: np.ndarray, c: np.ndarray, x: np.ndarray, prox: float) -> np.ndarray:
    """y*_i(x) = (A_i + prox I)^-1 (A_i c_i + prox x): what a fully synced client would send, per client."""
    return (A * c + prox * x) / (A + prox)


def drift_levels(problem: Problem, cfg: FederatedCheckConfig, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each client's drift level: ||y_i - y*_i(x)|| / R0 discretised by cfg.drift_thresholds."""
    drift = np.linalg.norm(y - prox_point(problem.A, problem.c, x, cfg.prox), axis=1) / problem.r0
    return np.searchsorted(np.asarray(cfg.drift_thresholds), drift, side="left")


def quality_level(cfg: FederatedCheckConfig, excess: float) -> int:
    """The number of (decreasing) quality thresholds the excess-loss ratio is at or below."""
    return int(np.sum(excess <= np.asarray(cfg.quality_thresholds)))


def local_training(problem: Problem, cfg: FederatedCheckConfig, y: np.ndarray, x: np.ndarray,
                   tau: np.ndarray) -> None:
    """FedProx-style local gradient steps toward the global model x, tau[i] of them for client i; updates y in
    place."""
    A, c = problem.A, problem.c
    for step in range(int(tau.max(initial=0))):
        active = tau > step
        ya = y[active]
        y[active] = ya - cfg.local_lr * (A[active] * (ya - c[active]) + cfg.prox * (ya - x))


def aggregate(x: np.ndarray, y: np.ndarray, sampled: np.ndarray, step_size: float) -> np.ndarray:
    """The server's step: x + eta * mean over the sampled clients of (y_i - x)."""
    return x + step_size * (y[sampled] - x).mean(axis=0)
