"""ALTERNATING-MARL (ALGORITHM.md section 5) from several starts, with best-pair tracking and a certificate.

    for each start (marl/starts.py): pi_l <- the start's robots
        (a start with a global policy first takes pi_l <- L-LEARN(pi_g0): its round 0)
        each round:  pi_g <- G-LEARN(pi_l, k);  mu <- mean field of (pi_g, pi_l);
                     pi_l <- L-LEARN(pi_g, mu); record V(pi_g, pi_l)
        stop when both gaps are below gap_tol (gaps every round only), or after `rounds` rounds
    return the best pair seen over all starts, with the NE gap of that pair (or of every round).

`run_alternation` is the loop; it drives any `Learners` (the two best
responses, the value and the certificate of one learner family):
`TabularLearners` here, `marl.deep.learners.DeepLearners` (DQN + PPO) for
function approximation. `alternate` runs the tabular learners on a game.

All draws come from one seed: the seed's SeedSequence is split into named
streams (G-LEARN, reference, mean field, L-LEARN); values use fixed evaluation
seeds so rounds and runs compare on common random numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from altmarl_ros.marl import budget, defaults
from altmarl_ros.marl.certificate import global_gap
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.evaluation import EvaluationReport, evaluate
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.glearn import g_learn
from altmarl_ros.marl.llearn import l_learn, local_gap, mean_field
from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
from altmarl_ros.marl.starts import DEFAULT_STARTS, Start, check_starts, tabular_starts

log = logging.getLogger(__name__)

DEFAULT_K_REF = 60
REFERENCE_MAX_COUNT_VECTORS = 2**20  # the default k_ref is the largest <= min(n, 60) with at most this many
STREAMS = ("glearn", "reference", "mean_field", "llearn")


@dataclass
class AlternationConfig:
    rounds: int = defaults.ROUNDS
    m: int = defaults.GLEARN_M  # next-state samples per Q entry (sampled G-LEARN)
    tol: float = defaults.GLEARN_TOL  # G-LEARN stopping tolerance on |Q - Q*|
    max_iters: int = 2000
    glearn_method: str = "sampled"
    k_ref: int | None = None  # reference k for the global gap; None: see reference_k
    gap_tol: float = 0.0  # stop early when both gaps are below this (0: never)
    local_method: str = defaults.LOCAL_METHOD
    local_temperature: float | None = None
    local_m: int = 64
    mean_field_mode: str = "episodic"  # or "stationary" (see llearn.mean_field)
    mean_field_batch: int = 200
    mean_field_burn_in: int = 100
    mean_field_steps: int = 200
    eval_seeds: int = defaults.ROUND_EVAL_SEEDS  # per-round value: seeds 0..eval_seeds-1
    eval_rollouts: int = defaults.ROUND_EVAL_ROLLOUTS
    certify: bool = True  # the NE gap of the returned pair
    certify_every_round: bool = False  # ... and of every round (costs a reference solve per round)
    starts: tuple[str, ...] = DEFAULT_STARTS  # marl/starts.py
    reference_tol: float = 0.1  # G-LEARN tolerance of the certificate's reference (any reference is sound)
    reference_m: int = 4  # next-state samples per entry of the reference's G-LEARN

    def validate(self, game: TabularGame, k: int) -> None:
        check_population(game.n, k)
        if self.rounds < 1:
            raise GameValidationError(f"rounds must be >= 1, got {self.rounds}")
        if self.eval_seeds < 1 or self.eval_rollouts < 1:
            raise GameValidationError("eval_seeds and eval_rollouts must be >= 1")
        check_population(game.n, self.reference_k(game))
        self.starts = check_starts(self.starts)
        if not self.reference_tol > 0:
            raise GameValidationError(f"reference_tol must be > 0, got {self.reference_tol}")
        if self.reference_m < 1:
            raise GameValidationError(f"reference_m must be >= 1, got {self.reference_m}")
        self.check_memory(game, k)

    def reference_k(self, game: TabularGame) -> int:
        """k_ref if given, else the largest k <= min(n, 60) with at most 2^20 count vectors (60 on zones)."""
        if self.k_ref is not None:
            return int(self.k_ref)
        k = min(game.n, DEFAULT_K_REF)
        while k > 1 and budget.count_vectors(k, game.num_local_states) > REFERENCE_MAX_COUNT_VECTORS:
            k -= 1
        return k

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
            m=self.m, method=self.glearn_method, k_ref=k_ref, reference_m=self.reference_m,
            local_method=self.local_method, local_m=self.local_m,
            horizon=game.horizon, eval_rollouts=self.eval_rollouts, mean_field_batch=self.mean_field_batch,
            mean_field_horizon=game.horizon if episodic else self.mean_field_burn_in + self.mean_field_steps,
            mean_field_used=game.horizon if episodic else self.mean_field_steps,
            certify_every_round=self.certify_every_round)

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
    start: str = "uniform"  # which start (marl/starts.py) the round belongs to
    reference_error_bound: float = float("nan")  # tabular: MacQueen bound of the reference's Q; deep: NaN


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
    reference_error_bound: float = float("nan")


class Learners(Protocol):
    """The two best responses, the value and the certificate of one task and learner family.

    `run_alternation` drives any implementation: `TabularLearners` below, and
    `marl.deep.learners.DeepLearners` (DQN + PPO) for function approximation.
    """

    def initial_local_policy(self) -> Any: ...

    def starts(self) -> list[Start]: ...  # optional: several starting pairs (default: the initial local policy)

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


def _starts(learners: Learners) -> list[Start]:
    if hasattr(learners, "starts"):
        return learners.starts()
    return [Start("uniform", learners.initial_local_policy())]


def run_alternation(learners: Learners, rounds: int, certify: bool = True, gap_tol: float = 0.0,
                    progress: bool = False, desc: str = "alternation",
                    certify_final: bool = False) -> AlternationOutcome:
    """ALTERNATING-MARL over any `Learners` from each of its starts; keeps the best pair by measured value.

    `certify`: the NE gap every round (gap_tol can then stop a start early); `certify_final`:
    the NE gap of the returned pair only, once, as the last phase of the progress bar.
    """
    starts = _starts(learners)
    best: AlternationOutcome | None = None
    records: list[RoundRecord] = []
    total = sum(rounds + (start.global_policy is not None) for start in starts) + int(certify_final)
    bar = _progress(total, desc, progress)

    def record_round(start: Start, g: GlobalResponse, l_resp: LocalResponse, began: float) -> RoundRecord:
        nonlocal best
        value = learners.value(g.policy, l_resp.policy)
        cert = learners.certify(g.policy, l_resp.policy) if certify else NO_CERTIFICATE
        record = RoundRecord(len(records) + 1, value.return_mean, value.return_std, value.mode_accuracy,
                             cert.global_gap, cert.global_gap_ci95, cert.reference_value, cert.local_gap,
                             cert.local_gap_worst_state, g.seconds, g.iterations, g.error_bound, cert.seconds,
                             time.perf_counter() - began, cert.local_gap_ci95, l_resp.seconds, start.name,
                             cert.reference_error_bound)
        records.append(record)
        log.info("%s round %d (start %s): value %.2f ± %.2f, mode accuracy %.3f, global gap %.3f ± %.3f, "
                 "local gap %.4f (%.1fs)", desc, record.round, start.name, record.value_mean, record.value_std,
                 record.mode_accuracy, cert.global_gap, cert.global_gap_ci95, cert.local_gap, record.round_seconds)
        bar.update(1)
        bar.set_postfix(start=start.name, value=f"{record.value_mean:.1f}",
                        best=f"{max(r.value_mean for r in records):.1f}")
        if best is None or record.value_mean > records[best.best_round - 1].value_mean:
            best = AlternationOutcome(record.round, records, g, l_resp, l_resp.policy)
        return record

    for start in starts:
        local_policy = start.local_policy
        if start.global_policy is not None:  # round 0: the robots' best response to the start's global policy
            began = time.perf_counter()
            l_resp = learners.local_response(start.global_policy, local_policy)
            local_policy = l_resp.policy
            g = (learners.evaluate_global(start.global_policy, local_policy) if hasattr(learners, "evaluate_global")
                 else GlobalResponse(start.global_policy, 0.0, 0, 0.0))
            record_round(start, g, l_resp, began)
        for _ in range(rounds):
            began = time.perf_counter()
            g = learners.global_response(local_policy)
            l_resp = learners.local_response(g.policy, local_policy)
            local_policy = l_resp.policy
            record = record_round(start, g, l_resp, began)
            if certify and max(record.global_gap, record.local_gap) < gap_tol:
                log.info("both gaps below gap_tol=%g after round %d: next start", gap_tol, record.round)
                break
    if certify_final:
        bar.set_description(f"{desc}: certificate")
        cert = learners.certify(best.global_response.policy, best.local_policy)
        index = best.best_round - 1
        records[index] = dataclasses.replace(
            records[index], global_gap=cert.global_gap, global_gap_ci95=cert.global_gap_ci95,
            reference_value=cert.reference_value, local_gap=cert.local_gap, local_gap_ci95=cert.local_gap_ci95,
            local_gap_worst_state=cert.local_gap_worst_state, reference_seconds=cert.seconds,
            reference_error_bound=cert.reference_error_bound)
        log.info("certificate of the best pair (round %d, start %s): global gap %.3f ± %.3f, local gap %.4f (%.1fs)",
                 best.best_round, records[index].start, cert.global_gap, cert.global_gap_ci95, cert.local_gap,
                 cert.seconds)
        bar.update(1)
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
        self.values: dict[tuple[int, int], tuple[Any, Any, EvaluationReport]] = {}  # reused by the certificate

    def initial_local_policy(self) -> np.ndarray:
        return uniform_local_policy(self.game)

    def starts(self) -> list[Start]:
        return tabular_starts(self.game, self.k, self.config.starts)

    def evaluate_global(self, global_policy: GlobalPolicy, local_policy: np.ndarray) -> GlobalResponse:
        """A start's fixed global policy as a response: its own Q on G-LEARN's operator (policy evaluation)."""
        c = self.config
        learned = g_learn(self.game, local_policy, self.k, method=c.glearn_method, m=c.m, tol=c.tol,
                          max_iters=c.max_iters, rng=self.streams["glearn"], actions=global_policy.actions)
        return GlobalResponse(global_policy, learned.seconds, learned.iterations, learned.error_bound,
                              learned.q_values)

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
        report = evaluate(self.game, global_policy, local_policy, self.eval_seeds, self.config.eval_rollouts)
        self.values[(id(global_policy), id(local_policy))] = (global_policy, local_policy, report)
        return report

    def certify(self, global_policy: GlobalPolicy, local_policy: np.ndarray) -> Certificate:
        c = self.config
        start = time.perf_counter()
        k_ref = c.reference_k(self.game)
        reference = g_learn(self.game, local_policy, k_ref, method=c.glearn_method, m=c.reference_m,
                            tol=c.reference_tol,
                            max_iters=c.max_iters, rng=self.streams["reference"], q_init=self.ref_init)
        self.ref_init = reference.q_values
        ref_policy = GlobalPolicy.from_q(reference.q_values, k_ref, observation="full")
        known = self.values.get((id(global_policy), id(local_policy)))
        measured = global_gap(self.game, global_policy, ref_policy, local_policy, self.eval_seeds, c.eval_rollouts,
                              mine=known[2] if known else None)
        seconds = time.perf_counter() - start
        gaps = local_gap(self.game, self._mean_field(global_policy, local_policy), local_policy)
        return Certificate(measured.gap, measured.ci95, measured.reference_value, gaps.expected, 0.0,
                           gaps.worst_state, seconds, reference.error_bound)


def alternate(game: TabularGame, k: int, config: AlternationConfig | None = None, seed: int = 0,
              progress: bool = False) -> AlternationResult:
    """Run ALTERNATING-MARL on a tabular game with the tabular learners; see the module docstring."""
    config = config or AlternationConfig()
    config.validate(game, k)
    outcome = run_alternation(TabularLearners(game, k, config, seed), config.rounds,
                              config.certify and config.certify_every_round, config.gap_tol, progress,
                              f"alternation k={k}", certify_final=config.certify and not config.certify_every_round)
    return AlternationResult(game, k, seed, config, outcome.global_response.state, outcome.global_response.policy,
                             outcome.local_policy.copy(), outcome.local_response.state.copy(), outcome.best_round,
                             outcome.rounds)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
