"""ALTERNATING-MARL (ALGORITHM.md section 5) with best-pair tracking and a per-round certificate.

    pi_l <- uniform; pi_g <- constant
    each round:  pi_g <- G-LEARN(pi_l, k);  mu <- mean field of (pi_g, pi_l);
                 pi_l <- L-LEARN(pi_g, mu); record V(pi_g, pi_l) and the NE gap
    stop when both gaps are below gap_tol, or after `rounds` rounds; return the best pair seen.

All draws come from one seed: the seed's SeedSequence is split into named
streams (G-LEARN, reference, mean field, L-LEARN); values use fixed evaluation
seeds so rounds and runs compare on common random numbers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from altmarl_ros.marl.certificate import global_gap
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.evaluation import evaluate
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.glearn import g_learn
from altmarl_ros.marl.llearn import l_learn, local_gap, mean_field
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy

log = logging.getLogger(__name__)

DEFAULT_K_REF = 60
STREAMS = ("glearn", "reference", "mean_field", "llearn")


@dataclass
class AlternationConfig:
    rounds: int = 3
    m: int = 8  # next-state samples per Q entry (sampled G-LEARN)
    tol: float = 0.01  # G-LEARN stopping tolerance on |Q - Q*|
    max_iters: int = 2000
    glearn_method: str = "sampled"
    k_ref: int | None = None  # reference k for the global gap; None: min(n, DEFAULT_K_REF)
    gap_tol: float = 0.0  # stop early when both gaps are below this (0: never)
    local_method: str = "exact"
    local_temperature: float | None = None
    local_m: int = 64
    mean_field_mode: str = "episodic"  # or "stationary" (see llearn.mean_field)
    mean_field_batch: int = 200
    mean_field_burn_in: int = 100
    mean_field_steps: int = 200
    eval_seeds: int = 5  # per-round value: seeds 0..eval_seeds-1
    eval_rollouts: int = 50
    certify: bool = True

    def validate(self, game: TabularGame, k: int) -> None:
        check_population(game.n, k)
        if self.rounds < 1:
            raise GameValidationError(f"rounds must be >= 1, got {self.rounds}")
        if self.eval_seeds < 1 or self.eval_rollouts < 1:
            raise GameValidationError("eval_seeds and eval_rollouts must be >= 1")
        check_population(game.n, self.reference_k(game))

    def reference_k(self, game: TabularGame) -> int:
        return min(game.n, DEFAULT_K_REF) if self.k_ref is None else int(self.k_ref)


@dataclass
class RoundRecord:
    round: int
    value_mean: float
    value_std: float
    mode_accuracy: float
    global_gap: float
    global_gap_ci95: float
    reference_value: float
    local_gap: float
    local_gap_worst_state: float
    glearn_seconds: float
    glearn_iterations: int
    glearn_error_bound: float
    reference_seconds: float
    round_seconds: float


@dataclass
class AlternationResult:
    game: TabularGame
    k: int
    seed: int
    config: AlternationConfig
    global_q: np.ndarray
    global_policy: GlobalPolicy
    local_policy: np.ndarray
    local_q: np.ndarray
    best_round: int
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def best(self) -> RoundRecord:
        return self.rounds[self.best_round - 1]

    def history(self) -> list[dict]:
        return [asdict(r) for r in self.rounds]


def alternate(game: TabularGame, k: int, config: AlternationConfig | None = None, seed: int = 0,
              progress: bool = False) -> AlternationResult:
    """Run ALTERNATING-MARL on a tabular game; see the module docstring."""
    config = config or AlternationConfig()
    config.validate(game, k)
    streams = dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS))),
                       strict=True))
    eval_seeds = list(range(config.eval_seeds))
    k_ref = config.reference_k(game)
    local_policy = uniform_local_policy(game)
    local_q = np.zeros((game.num_global_states, game.num_local_states, game.num_local_actions))
    q_init, ref_init = None, None
    best: AlternationResult | None = None
    records: list[RoundRecord] = []
    bar = _progress(config.rounds, f"alternation k={k}", progress)
    for round_number in range(1, config.rounds + 1):
        round_start = time.perf_counter()
        learned = g_learn(game, local_policy, k, method=config.glearn_method, m=config.m, tol=config.tol,
                          max_iters=config.max_iters, rng=streams["glearn"], q_init=q_init)
        q_init = learned.q_values
        global_policy = GlobalPolicy.from_q(learned.q_values, k)
        field_now = mean_field(game, global_policy, local_policy, streams["mean_field"], config.mean_field_batch,
                               config.mean_field_burn_in, config.mean_field_steps, config.mean_field_mode)
        local_policy, local_q = l_learn(game, field_now, method=config.local_method,
                                        temperature=config.local_temperature, rng=streams["llearn"], m=config.local_m)
        value = evaluate(game, global_policy, local_policy, eval_seeds, config.eval_rollouts)
        gap_g, gap_ci, ref_value, ref_seconds = float("nan"), float("nan"), float("nan"), 0.0
        gap_l = gap_l_worst = float("nan")
        if config.certify:
            ref_start = time.perf_counter()
            reference = g_learn(game, local_policy, k_ref, method=config.glearn_method, m=config.m, tol=config.tol,
                                max_iters=config.max_iters, rng=streams["reference"], q_init=ref_init)
            ref_init = reference.q_values
            ref_policy = GlobalPolicy.from_q(reference.q_values, k_ref, observation="full")
            measured = global_gap(game, global_policy, ref_policy, local_policy, eval_seeds, config.eval_rollouts)
            gap_g, gap_ci, ref_value = measured.gap, measured.ci95, measured.reference_value
            ref_seconds = time.perf_counter() - ref_start
            field_after = mean_field(game, global_policy, local_policy, streams["mean_field"],
                                     config.mean_field_batch, config.mean_field_burn_in, config.mean_field_steps,
                                     config.mean_field_mode)
            gaps = local_gap(game, field_after, local_policy)
            gap_l, gap_l_worst = gaps.expected, gaps.worst_state
        record = RoundRecord(round_number, value.return_mean, value.return_std, value.mode_accuracy, gap_g, gap_ci,
                             ref_value, gap_l, gap_l_worst, learned.seconds, learned.iterations, learned.error_bound,
                             ref_seconds, time.perf_counter() - round_start)
        records.append(record)
        log.info("round %d: value %.2f ± %.2f, mode accuracy %.3f, global gap %.3f ± %.3f, local gap %.4f (%.1fs)",
                 round_number, record.value_mean, record.value_std, record.mode_accuracy, gap_g, gap_ci, gap_l,
                 record.round_seconds)
        bar.update(1)
        bar.set_postfix(value=f"{record.value_mean:.1f}", gap=f"{gap_g:.2f}")
        if best is None or record.value_mean > best.best.value_mean:
            best = AlternationResult(game, k, seed, config, learned.q_values, global_policy, local_policy.copy(),
                                     local_q.copy(), round_number, records)
        if config.certify and max(gap_g, gap_l) < config.gap_tol:
            log.info("both gaps below gap_tol=%g after round %d: stopping", config.gap_tol, round_number)
            break
    bar.close()
    best.rounds = records
    return best


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
