"""The equilibrium certificate (ALGORITHM.md section 6): measured NE gaps, not assumed ones.

Global gap: V(pi_g*, pi_l) - V(pi_g^(k), pi_l), where pi_g* is the same learner
at k_ref observing the whole population (its counts rounded to k_ref by the
largest-remainder rule; with k_ref = n this is exact full observation). Both
values use the same evaluation seeds (common random numbers) and the gap's
95 % interval comes from the paired per-seed differences.

What it bounds: the best response with full observation earns at least what this
reference earns, so the measured gap is a lower bound (up to its interval) on the
global gap of ALGORITHM.md section 6. Any full-observation reference gives a sound
lower bound; a larger k_ref (and a smaller reference tolerance) a tighter one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from altmarl_ros.marl.evaluation import EvaluationReport, evaluate
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy


@dataclass
class GlobalGap:
    gap: float
    ci95: float  # half-width of the 95 % interval of the gap
    reference_value: float
    policy_value: float
    k_ref: int


def t_quantile(dof: int) -> float:
    """Two-sided 95 % Student-t quantile with `dof` degrees of freedom."""
    return float(student_t.ppf(0.975, dof))


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95 % interval."""
    diff = np.asarray(a) - np.asarray(b)
    if len(diff) < 2:
        return float(diff.mean()), float("nan")
    return float(diff.mean()), float(t_quantile(len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))


def global_gap(game: TabularGame, policy: GlobalPolicy, reference: GlobalPolicy, local_policy: np.ndarray,
               seeds: list[int], rollouts: int, mine: EvaluationReport | None = None) -> GlobalGap:
    """Measured global NE gap of `policy` against the full-observation `reference`.

    `mine`: the pair's own evaluation on these seeds and rollouts if already made (evaluation
    is deterministic in its seeds, so it is the same numbers).
    """
    if mine is None or list(mine.seeds) != list(seeds) or mine.rollouts != rollouts:
        mine = evaluate(game, policy, local_policy, seeds, rollouts)
    best = evaluate(game, reference.with_observation("full"), local_policy, seeds, rollouts)
    gap, ci = paired_difference(best.per_seed_returns, mine.per_seed_returns)
    return GlobalGap(gap, ci, best.return_mean, mine.return_mean, reference.k)
