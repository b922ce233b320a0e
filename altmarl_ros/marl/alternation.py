"""ALTERNATING-MARL (ALGORITHM.md section 5) with best-pair tracking and a per-round certificate.

    pi_l <- uniform; pi_g <- constant
    each round:  pi_g <- G-LEARN(pi_l, k);  mu <- mean field of (pi_g, pi_l);
                 pi_l <- L-LEARN(pi_g, mu); record V(pi_g, pi_l) and the NE gap
    stop when both gaps are below gap_tol, or after `rounds` rounds; return the best pair seen.

`run_alternation` is the loop; it drives any `Learners` (the two best
responses, the value and the certificate of one learner family):
`TabularLearners` here, `marl.deep.learners.DeepLearners` (DQN + PPO) for
function approximation. `alternate` runs the tabular learners on a game.

All draws come from one seed: the seed's SeedSequence is split into named
streams (G-LEARN, reference, mean field, L-LEARN); values use fixed evaluation
seeds so rounds and runs compare on common random numbers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from altmarl_ros.marl import budget
from altmarl_ros.marl.certificate import global_gap
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.evaluation import EvaluationReport, evaluate
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
        self.check_memory(game, k)

    def reference_k(self, game: TabularGame) -> int:
        return min(game.n, DEFAULT_K_REF) if self.k_ref is None else int(self.k_ref)

    def memory_phases(self, game: TabularGame, k: int, k_ref: int | None | bool = True
                      ) -> tuple[int, list[tuple[str, int]]]:
        """What a run keeps across rounds and the peak of each step (budget.alternation_phases).

        `k_ref`: True for this config's reference (none without the certificate), None for none, or a value.
        """
        if k_ref is True:
            k_ref = self.reference_k(game) if self.certify else None
        episodic = self.mean_field_mode == "episodic"
        return budget.alternation_phases(
            game.num_global_states, game.num_global_actions, game.num_local_states, game.num_local_actions, k,
            m=self.m, method=self.glearn_method, k_ref=k_ref, local_method=self.local_method, local_m=self.local_m,
            horizon=game.horizon, eval_rollouts=self.eval_rollouts, mean_field_batch=self.mean_field_batch,
            mean_field_horizon=game.horizon if episodic else self.mean_field_burn_in + self.mean_field_steps,
            mean_field_used=game.horizon if episodic else self.mean_field_steps)

    def memory_bytes(self, game: TabularGame, k: int, k_ref: int | None | bool = True) -> int:
        """Peak memory of the run's arrays: what it keeps plus its largest step."""
        kept, phases = self.memory_phases(game, k, k_ref)
        return kept + max(size for _, size in phases)

    def check_memory(self, game: TabularGame, k: int) -> int:
        """Refuse the run before it starts if it exceeds the memory budget; say what would fit instead."""
        kept, phases = self.memory_phases(game, k)
        step, largest = max(phases, key=lambda phase: phase[1])
        total, limit = kept + largest, budget.budget()
        if total <= limit:
            return total
        return budget.check(
            total, f"training with k={k} on {game.name} (n={game.n}, {game.num_local_states} local states, "
            f"{game.num_global_states} global states)", self._memory_hint(game, k, limit),
            f"its largest step is {step}: {budget.format_bytes(largest)}; kept across rounds (Q tables, policies, "
            f"the game): {budget.format_bytes(kept)}")

    def _memory_hint(self, game: TabularGame, k: int, limit: int) -> str:
        """What would fit: the largest k, the largest k_ref, no certificate."""
        k_ref = self.reference_k(game) if self.certify else None
        hints = []

        def largest_k(reference: int | None) -> int | None:
            return budget.largest_fitting(lambda x: self.memory_bytes(game, x, reference), 1, min(k, game.n), limit)

        fit_k = largest_k(k_ref)
        if fit_k is not None:
            hints.append(f"k <= {fit_k} fits" + (f" with k_ref={k_ref}" if k_ref is not None else ""))
        if k_ref is not None:
            fit_ref = budget.largest_fitting(lambda x: self.memory_bytes(game, k, x), 1, game.n, limit)
            if fit_ref is not None:
                hints.append(f"k_ref <= {fit_ref} fits with k={k} (--k-ref {fit_ref})")
            if self.memory_bytes(game, k, None) <= limit:
                hints.append(f"k={k} fits without the certificate (--no-certify)")
            elif fit_k is None and fit_ref is None:
                bare = largest_k(None)
                if bare is not None:
                    hints.append(f"k <= {bare} fits without the certificate (--no-certify)")
        if not hints:
            hints.append(f"no k fits with {game.num_local_states} local states: reduce zones")
        return "; ".join(hints) + "; or reduce m"


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
    local_gap_worst_state: float  # tabular: the largest gain of any single state; deep: NaN
    glearn_seconds: float
    glearn_iterations: int  # tabular: Bellman sweeps; deep: gradient updates
    glearn_error_bound: float  # tabular: MacQueen bound on |Q - Q*|; deep: last TD loss
    reference_seconds: float
    round_seconds: float
    local_gap_ci95: float = 0.0  # exact (0) for tabular; a paired 95 % half-width for the deep estimate
    llearn_seconds: float = 0.0


@dataclass
class GlobalResponse:
    """What a G-LEARN best response returns to the loop."""

    policy: Any
    seconds: float
    iterations: int
    error_bound: float
    state: Any = None  # learner-specific (Q table, network) kept with the pair


@dataclass
class LocalResponse:
    policy: Any
    seconds: float
    state: Any = None


@dataclass
class Certificate:
    global_gap: float
    global_gap_ci95: float
    reference_value: float
    local_gap: float
    local_gap_ci95: float
    local_gap_worst_state: float
    seconds: float


class Learners(Protocol):
    """The two best responses, the value and the certificate of one task and learner family.

    `run_alternation` drives any implementation: `TabularLearners` below, and
    `marl.deep.learners.DeepLearners` (DQN + PPO) for function approximation.
    """

    def initial_local_policy(self) -> Any: ...

    def global_response(self, local_policy: Any) -> GlobalResponse: ...

    def local_response(self, global_policy: Any, local_policy: Any) -> LocalResponse: ...

    def value(self, global_policy: Any, local_policy: Any) -> EvaluationReport: ...

    def certify(self, global_policy: Any, local_policy: Any) -> Certificate: ...


@dataclass
class AlternationOutcome:
    best_round: int
    rounds: list[RoundRecord]
    global_response: GlobalResponse
    local_response: LocalResponse | None  # None: the best pair is the starting local policy
    local_policy: Any


NO_CERTIFICATE = Certificate(*(float("nan"),) * 6, 0.0)


def run_alternation(learners: Learners, rounds: int, certify: bool = True, gap_tol: float = 0.0,
                    progress: bool = False, desc: str = "alternation") -> AlternationOutcome:
    """ALTERNATING-MARL over any `Learners`; keeps the best pair by measured value."""
    local_policy = learners.initial_local_policy()
    best: AlternationOutcome | None = None
    records: list[RoundRecord] = []
    bar = _progress(rounds, desc, progress)
    for round_number in range(1, rounds + 1):
        round_start = time.perf_counter()
        g = learners.global_response(local_policy)
        l_resp = learners.local_response(g.policy, local_policy)
        local_policy = l_resp.policy
        value = learners.value(g.policy, local_policy)
        cert = learners.certify(g.policy, local_policy) if certify else NO_CERTIFICATE
        record = RoundRecord(round_number, value.return_mean, value.return_std, value.mode_accuracy, cert.global_gap,
                             cert.global_gap_ci95, cert.reference_value, cert.local_gap, cert.local_gap_worst_state,
                             g.seconds, g.iterations, g.error_bound, cert.seconds,
                             time.perf_counter() - round_start, cert.local_gap_ci95, l_resp.seconds)
        records.append(record)
        log.info("round %d: value %.2f ± %.2f, mode accuracy %.3f, global gap %.3f ± %.3f, local gap %.4f (%.1fs)",
                 round_number, record.value_mean, record.value_std, record.mode_accuracy, cert.global_gap,
                 cert.global_gap_ci95, cert.local_gap, record.round_seconds)
        bar.update(1)
        bar.set_postfix(value=f"{record.value_mean:.1f}", gap=f"{cert.global_gap:.2f}")
        if best is None or record.value_mean > records[best.best_round - 1].value_mean:
            best = AlternationOutcome(round_number, records, g, l_resp, local_policy)
        if certify and max(cert.global_gap, cert.local_gap) < gap_tol:
            log.info("both gaps below gap_tol=%g after round %d: stopping", gap_tol, round_number)
            break
    bar.close()
    return best


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


class TabularLearners:
    """Sampled (or exact) G-LEARN, exact (or sampled) L-LEARN, the exact-protocol value and certificate."""

    def __init__(self, game: TabularGame, k: int, config: AlternationConfig, seed: int) -> None:
        self.game, self.k, self.config = game, k, config
        seeds = np.random.SeedSequence(seed).spawn(len(STREAMS))
        self.streams = {name: np.random.default_rng(s) for name, s in zip(STREAMS, seeds, strict=True)}
        self.eval_seeds = list(range(config.eval_seeds))
        self.q_init = self.ref_init = None

    def initial_local_policy(self) -> np.ndarray:
        return uniform_local_policy(self.game)

    def global_response(self, local_policy: np.ndarray) -> GlobalResponse:
        c = self.config
        learned = g_learn(self.game, local_policy, self.k, method=c.glearn_method, m=c.m, tol=c.tol,
                          max_iters=c.max_iters, rng=self.streams["glearn"], q_init=self.q_init)
        self.q_init = learned.q_values
        return GlobalResponse(GlobalPolicy.from_q(learned.q_values, self.k), learned.seconds, learned.iterations,
                              learned.error_bound, learned.q_values)

    def _mean_field(self, global_policy: GlobalPolicy, local_policy: np.ndarray):
        c = self.config
        return mean_field(self.game, global_policy, local_policy, self.streams["mean_field"], c.mean_field_batch,
                          c.mean_field_burn_in, c.mean_field_steps, c.mean_field_mode)

    def local_response(self, global_policy: GlobalPolicy, local_policy: np.ndarray) -> LocalResponse:
        start = time.perf_counter()
        field_now = self._mean_field(global_policy, local_policy)
        policy, local_q = l_learn(self.game, field_now, method=self.config.local_method,
                                  temperature=self.config.local_temperature, rng=self.streams["llearn"],
                                  m=self.config.local_m)
        return LocalResponse(policy, time.perf_counter() - start, local_q)

    def value(self, global_policy: GlobalPolicy, local_policy: np.ndarray) -> EvaluationReport:
        return evaluate(self.game, global_policy, local_policy, self.eval_seeds, self.config.eval_rollouts)

    def certify(self, global_policy: GlobalPolicy, local_policy: np.ndarray) -> Certificate:
        c = self.config
        start = time.perf_counter()
        k_ref = c.reference_k(self.game)
        reference = g_learn(self.game, local_policy, k_ref, method=c.glearn_method, m=c.m, tol=c.tol,
                            max_iters=c.max_iters, rng=self.streams["reference"], q_init=self.ref_init)
        self.ref_init = reference.q_values
        ref_policy = GlobalPolicy.from_q(reference.q_values, k_ref, observation="full")
        measured = global_gap(self.game, global_policy, ref_policy, local_policy, self.eval_seeds, c.eval_rollouts)
        seconds = time.perf_counter() - start
        gaps = local_gap(self.game, self._mean_field(global_policy, local_policy), local_policy)
        return Certificate(measured.gap, measured.ci95, measured.reference_value, gaps.expected, 0.0,
                           gaps.worst_state, seconds)


def alternate(game: TabularGame, k: int, config: AlternationConfig | None = None, seed: int = 0,
              progress: bool = False) -> AlternationResult:
    """Run ALTERNATING-MARL on a tabular game with the tabular learners; see the module docstring."""
    config = config or AlternationConfig()
    config.validate(game, k)
    outcome = run_alternation(TabularLearners(game, k, config, seed), config.rounds, config.certify, config.gap_tol,
                              progress, f"alternation k={k}")
    return AlternationResult(game, k, seed, config, outcome.global_response.state, outcome.global_response.policy,
                             outcome.local_policy.copy(), outcome.local_response.state.copy(), outcome.best_round,
                             outcome.rounds)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
