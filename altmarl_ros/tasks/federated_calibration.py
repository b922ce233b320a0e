"""Calibrate the `federated` game's numbers on the real federated problem (federated_problem.py).

Why: the default game's numbers (eta^2 curvature penalties, drift and quality
rates) are a hand-written model; on the real quadratic problem they make the
learned server prefer the smallest step although eta = 1 is better. Here every
number of the game's arrays is *measured* on that problem instead, by one
fixed procedure (no tuning against the learned policy's score):

1. Behaviour data. For each calibration seed (disjoint from the check's
   evaluation seeds 0..9: the default is 1000..1199) build the check's problem
   (``federated_problem.make_problem``: same client distribution, same
   drift/quality discretisation) and run it for ``rounds`` rounds with an exploring behaviour
   policy: the step level of each round is uniform over the E levels, every
   client's action is uniform over (skip, light, heavy), the server aggregates
   k uniformly sampled clients exactly as the check does. Each round records
   q_t, e_t, every client's (d, a, d'), the sampled clients' (d, a), and the
   improvement of the true excess-loss ratio ``delta_t = x_t - x_{t+1}``
   (x = (F - F*) / (F0 - F*)).
2. Client drift P_l(d' | d, (q, e), a): empirical frequencies over all
   clients and rounds, smoothed hierarchically (Dirichlet prior of weight
   ``prior_weight`` toward the same row pooled over q, which is itself
   smoothed toward the row pooled over q and e, and that toward "stay").
3. Quality P_g(q' | q, e): empirical frequencies of the quality level, same
   smoothing (toward the row pooled over e, then "stay"). P_g cannot see the
   population, so this is the marginal under the behaviour policy.
4. Rewards. For each (q, e), a ridge least-squares fit of delta_t on the
   composition of the aggregated sample, ``delta_t ~ sum_{d,a} w[d, a] *
   (#sampled clients with (d, a)) / k`` (no intercept: the fractions sum to 1,
   so w[d, a] is the improvement a (d, a) client brings, averaged over who it
   is aggregated with), shrunk with weight ``ridge`` toward the cell's mean
   improvement mbar[q, e]; phi[q] is the mean excess-loss ratio of the rounds
   spent in level q. The game (federated.build_game, ``calibration: real``)
   uses ``r_g(q, e) = -(phi[q] - mbar[q, e])`` and ``r_l(d, (q, e), a) =
   w[d, a] - mbar[q, e] - step_cost * local_steps[a]`` (times a unit scale), so
   the system reward r_g + (1/n) sum_i r_l is minus the predicted excess-loss
   ratio after the round, and the return is minus a discounted area under the
   excess-loss curve, the check's score.

Why not reward the improvement delta itself (whose discounted sum is also the
discounted AUC up to constants)? P_g cannot see the population, so a good
population's improvement cannot raise the game's quality level; the model
then lets the coordinator drop to a low quality level (large steps) and
collect the large improvements available there round after round, which the
real loss does not allow (it telescopes). Trained that way the coordinator
chooses eta = 2 in 94 % of rounds and loses to fixed steps. Minus the next
excess-loss ratio credits a client's improvement for one round only
(undervalues it) but has no such loophole.

Deterministic from the seeds; about 2 s for 200 seeds x 50 rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.tasks.federated_problem import (
    LOCAL_ACTIONS,
    FederatedCheckConfig,
    aggregate,
    drift_levels,
    local_training,
    loss,
    make_problem,
    quality_level,
)

DEFAULT_SEEDS = tuple(range(1000, 1200))


@dataclass(frozen=True)
class Calibration:
    local_transition: np.ndarray  # P_l[d, q, e, a, d'], shape (D, Q, E, A, D)
    quality_transition: np.ndarray  # P_g quality part [q, e, q'], shape (Q, E, Q)
    contribution: np.ndarray  # fitted per-client improvement of the excess-loss ratio [d, q, e, a]
    mean_improvement: np.ndarray  # (Q, E) mean improvement of the excess-loss ratio under the behaviour policy
    level_value: np.ndarray  # (Q,) mean excess-loss ratio of the rounds spent in each quality level
    local_counts: np.ndarray  # raw counts behind local_transition
    quality_counts: np.ndarray  # raw counts behind quality_transition
    fit_r2: np.ndarray  # (Q, E) in-sample R^2 of the reward fit (NaN where a cell has < 2 rounds)
    local_steps: tuple[int, ...]
    k: int
    seeds: tuple[int, ...]


def _smooth(counts: np.ndarray, parent: np.ndarray, weight: float) -> np.ndarray:
    """Dirichlet posterior mean: (counts + weight * parent) / (N + weight) on the last axis."""
    total = counts.sum(axis=-1, keepdims=True)
    return (counts + weight * parent) / (total + weight)


def _behaviour_run(cfg: FederatedCheckConfig, step_sizes: np.ndarray, D: int, k: int, seed: int):
    """One exploring run on the check's problem of `seed`; yields the per-round records."""
    problem = make_problem(cfg, D, np.random.default_rng([seed, 0]))
    rng = np.random.default_rng([seed, 2])
    A, c, n, E = problem.A, problem.c, cfg.n_clients, len(step_sizes)
    span = problem.loss_0 - problem.loss_star
    steps = np.asarray(cfg.local_steps)
    x, y, excess = np.zeros(cfg.dim), problem.y0.copy(), 1.0
    level = int(rng.integers(E))
    d = drift_levels(problem, cfg, x, y)
    records = []
    for _ in range(cfg.rounds):
        q = quality_level(cfg, excess)
        next_level = int(rng.integers(E))
        sampled = rng.choice(n, size=k, replace=False)
        actions = rng.integers(len(LOCAL_ACTIONS), size=n)
        tau = steps[actions]
        local_training(problem, cfg, y, x, tau)
        x = aggregate(x, y, sampled, step_sizes[level])
        new_excess = (loss(A, c, x) - problem.loss_star) / span
        if not np.isfinite(new_excess):
            break
        d_next = drift_levels(problem, cfg, x, y)
        records.append((q, level, d, actions, d_next, sampled, excess - new_excess, excess))
        d, excess, level = d_next, new_excess, next_level
    return records


def calibration_bytes(cfg: FederatedCheckConfig, seeds: int, k: int, D: int, Q: int, E: int, A: int) -> int:
    """Peak of `calibrate`: one sampled composition (D*A floats) and target per round and seed, kept for the fits,
    one behaviour run's problem and records, and the count tables."""
    n, rounds = cfg.n_clients, cfg.rounds
    kept = seeds * rounds * (budget.F8 * D * A + budget.ARRAY_OVERHEAD)
    run = budget.F8 * n * cfg.dim * 8 + rounds * (4 * budget.F8 * n + budget.F8 * k + 6 * budget.ARRAY_OVERHEAD)
    tables = budget.F8 * (D * Q * E * A * D * 4 + Q * E * Q * 3)
    fit = budget.F8 * seeds * rounds * D * A * 2 // max(Q * E, 1) + budget.F8 * (D * A) ** 2 * 3
    return kept + run + tables + fit + 2**20  # 1 MiB: the check problem's setup and Python objects


def calibrate(check_config: FederatedCheckConfig | None = None, seeds=DEFAULT_SEEDS, k: int = 5,
              step_sizes=(0.5, 1.0, 1.5, 2.0), drift_levels: int = 4, quality_levels: int = 5,
              prior_weight: float = 5.0, ridge: float = 1.0) -> Calibration:
    """Measure P_l, the quality part of P_g and the per-client contribution on the real problem (module doc)."""
    cfg = check_config or FederatedCheckConfig()
    seeds = tuple(int(s) for s in seeds)
    step_sizes = np.asarray(step_sizes, dtype=float)
    D, Q, E, A = drift_levels, quality_levels, len(step_sizes), len(LOCAL_ACTIONS)
    if not seeds:
        raise GameValidationError("calibration needs at least one seed")
    if not 1 <= k <= cfg.n_clients:
        raise GameValidationError(f"calibration k must be in [1, n_clients={cfg.n_clients}], got {k}")
    if len(cfg.drift_thresholds) != D - 1 or len(cfg.quality_thresholds) != Q - 1:
        raise GameValidationError(
            f"the check's thresholds give {len(cfg.drift_thresholds) + 1} drift and "
            f"{len(cfg.quality_thresholds) + 1} quality levels, the game has {D} and {Q}")
    if prior_weight <= 0 or ridge <= 0:
        raise GameValidationError(f"prior_weight and ridge must be > 0, got {prior_weight}, {ridge}")
    budget.check(calibration_bytes(cfg, len(seeds), k, D, Q, E, A),
                 f"calibrating the federated game on {len(seeds)} behaviour runs of {cfg.rounds} rounds",
                 "reduce calibration_seeds")

    local_counts = np.zeros((D, Q, E, A, D))
    quality_counts = np.zeros((Q, E, Q))
    excess_sum, excess_rounds = np.zeros(Q), np.zeros(Q)
    features = [[[] for _ in range(E)] for _ in range(Q)]
    targets = [[[] for _ in range(E)] for _ in range(Q)]
    for seed in seeds:
        records = _behaviour_run(cfg, step_sizes, D, k, seed)
        for t, (q, e, d, actions, d_next, sampled, delta, excess) in enumerate(records):
            excess_sum[q] += excess
            excess_rounds[q] += 1
            np.add.at(local_counts, (d, q, e, actions, d_next), 1.0)
            if t + 1 < len(records):
                quality_counts[q, e, records[t + 1][0]] += 1.0
            features[q][e].append(np.bincount(d[sampled] * A + actions[sampled], minlength=D * A) / k)
            targets[q][e].append(delta)

    # P_l: (d, q, e, a) -> pooled over q -> pooled over q and e -> stay
    stay = np.eye(D)[:, None, :]  # (D, 1, D') broadcast over a
    pooled_qe = _smooth(local_counts.sum(axis=(1, 2)), stay, prior_weight)  # (D, A, D')
    pooled_q = _smooth(local_counts.sum(axis=1), pooled_qe[:, None], prior_weight)  # (D, E, A, D')
    local_transition = _smooth(local_counts, pooled_q[:, None], prior_weight)
    # quality: (q, e) -> pooled over e -> stay
    pooled_e = _smooth(quality_counts.sum(axis=1), np.eye(Q), prior_weight)  # (Q, Q')
    quality_transition = _smooth(quality_counts, pooled_e[:, None], prior_weight)

    # level value: mean excess of the rounds in the level; an unvisited level gets the middle of its threshold band
    bounds = np.concatenate([[1.0], np.asarray(cfg.quality_thresholds, dtype=float), [0.0]])
    level_value = np.where(excess_rounds > 0, excess_sum / np.maximum(excess_rounds, 1), (bounds[:-1] + bounds[1:]) / 2)

    contribution = np.zeros((D, Q, E, A))
    mean_improvement = np.zeros((Q, E))
    fit_r2 = np.full((Q, E), np.nan)
    for q in range(Q):
        for e in range(E):
            if not targets[q][e]:
                continue  # never visited: contribution 0 (no evidence of any improvement)
            X, t = np.asarray(features[q][e]), np.asarray(targets[q][e])
            mean_improvement[q, e] = t.mean()
            prior = np.full(D * A, t.mean())
            w = np.linalg.solve(X.T @ X + ridge * np.eye(D * A), X.T @ t + ridge * prior)
            contribution[:, q, e, :] = w.reshape(D, A)
            if len(t) > 1 and t.var() > 0:
                fit_r2[q, e] = 1.0 - np.mean((t - X @ w) ** 2) / t.var()
    return Calibration(local_transition, quality_transition, contribution, mean_improvement, level_value,
                       local_counts, quality_counts, fit_r2,
                       tuple(int(s) for s in cfg.local_steps), k, seeds)
