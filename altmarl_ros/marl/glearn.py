"""G-LEARN: subsampled mean-field Q-learning of the global agent (ALGORITHM.md section 3).

The local policy is frozen. Q_k lives on (s_g, F, a_g) with F a count vector of
k agents, indexed by its rank (`CountIndex`), so its size is
|S_g| * C(k+|S_l|-1, |S_l|-1) * |A_g|, independent of n.

Offline form used here (the generative-model form of the update): for every
(s_g, F) at once, draw `m` next count vectors F' of the k agents once, keep them
as an index array (a sparse transition with m entries per row), and iterate the
resulting empirical Bellman operator to its fixed point (alpha_t = 1):

    Q(s_g, F, a) = r_g(s_g, a) + (1/k) sum_s F_s rbar_l(s, s_g)
                   + gamma * (1/m) sum_j sum_{s_g'} P_g(s_g' | s_g, a) max_a' Q(s_g', F'_j, a')

F' does not depend on a_g, and the expectation over s_g' and over the local
actions in the reward is taken exactly. The `exact` operator replaces the m
samples by the exact distribution of F' (affordable for small k).

Iteration stops when MacQueen's bound on the error of V, gamma/(1-gamma) times
half the span of the last change, is below `tol`; the returned Q is shifted by
the bound's midpoint, so |Q - Q*| <= tol for the operator used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from math import lgamma
from typing import Protocol

import numpy as np
from scipy import sparse

from altmarl_ros.marl import budget, count_kernels
from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame, check_population
from altmarl_ros.marl.policies import check_local_policy

log = logging.getLogger(__name__)

EXACT_MAX_COUNT_VECTORS = 5000
REDUCE = "reduce k (or k_ref, the certificate's reference), m or the number of local states (zones)"


@dataclass
class GLearnResult:
    q_values: np.ndarray  # (G, #count vectors, B)
    k: int
    method: str  # "sampled" or "exact"
    samples_per_entry: int  # m (0 for exact)
    iterations: int
    error_bound: float  # MacQueen bound on |Q - Q*| for the operator used
    seconds: float


# --- the transition of the k agents' count vector -------------------------------------

class CountTransition(Protocol):
    def expect(self, values: np.ndarray) -> np.ndarray:
        """W[s_g, F, s_g'] = E[V[s_g', F'] | s_g, F] for V of shape (G', #F)."""


class SampledCountTransition:
    """m sampled next count vectors per (s_g, F), kept as their ranks `next_ranks` (G, #F, m) int32.

    Each agent's next state is one 24-bit uniform compared with the CDF of
    P(s_l' | s_l, s_g) under the frozen policy (`count_kernels`: counter-based
    draws keyed by one value of `rng`); only how many agents end at or below each
    state is kept, which gives the rank of F' directly. Each row holds exactly m
    draws of weight 1/m (repeats allowed). `matrix` is the same operator as a
    sparse row-stochastic matrix, for inspection and for machines without numba.
    """

    def __init__(self, game: TabularGame, local_policy: np.ndarray, index: CountIndex, m: int,
                 rng: np.random.Generator) -> None:
        _check_m(m)
        k, L, G = index.k, index.num_states, game.num_global_states
        budget.check(budget.sampled_operator_build_bytes(G, k, L, m),
                     f"the sampled G-LEARN operator at k={k} ({budget.format_count(G * index.size)} rows x m={m})",
                     REDUCE)
        if index.size > np.iinfo(np.int32).max:
            raise GameValidationError(f"k={k} has {index.size} count vectors; ranks are int32: {REDUCE}")
        next_cdf = np.cumsum(game.local_next_state(local_policy), axis=-1)[..., :-1]  # (L, G, L-1)
        key = int(rng.integers(0, 2**63))
        vectors = index.all_vectors()
        self.m = m
        self.shape = (G, index.size)
        # rows and draws in a locality order: next_by_position[g, p, j] is the position of F'_j of the
        # count vector order[p] (count_kernels.locality_order)
        self.order = count_kernels.locality_order(vectors)
        self.position = np.empty_like(self.order)
        self.position[self.order] = np.arange(index.size)
        self.next_by_position = np.empty((G, index.size, m), dtype=np.int32)
        count_kernels.draw_next_ranks(vectors, self.order, self.position, count_kernels.thresholds(next_cdf),
                                      index.binomial_table, key, self.next_by_position)
        self._matrix: sparse.csr_matrix | None = None

    @property
    def next_ranks(self) -> np.ndarray:
        """The draws in rank order: next_ranks[g, F, j] is the rank of F'_j (a copy)."""
        ranks = np.empty_like(self.next_by_position)
        ranks[:, self.order] = self.order[self.next_by_position]
        return ranks

    @property
    def matrix(self) -> sparse.csr_matrix:
        """The operator as a CSR matrix with m entries of weight 1/m per row (built on first use)."""
        if self._matrix is None:
            rows, m = self.shape[0] * self.shape[1], self.m
            self._matrix = sparse.csr_matrix(
                (np.full(rows * m, 1.0 / m), self.next_ranks.ravel(), np.arange(0, rows * m + 1, m)),
                shape=(rows, self.shape[1]))
        return self._matrix

    def expect(self, values: np.ndarray) -> np.ndarray:
        """W[s_g, F, s_g'] = (1/m) sum_j V[s_g', F'_j(s_g, F)]."""
        return (self.matrix @ np.ascontiguousarray(values.T)).reshape(self.shape + (values.shape[0],))


class ExactCountTransition:
    """The exact distribution of F' for every (s_g, F), dense (G, #F, #F); small k only."""

    def __init__(self, game: TabularGame, local_policy: np.ndarray, index: CountIndex) -> None:
        _check_exact_size(index.k, index.size)
        k, L = index.k, index.num_states
        budget.check(budget.exact_operator_build_bytes(game.num_global_states, k, L),
                     f"the exact G-LEARN operator at k={k} ({game.num_global_states} x {index.size} x {index.size})",
                     REDUCE)
        next_probs = game.local_next_state(local_policy)  # (L, G, L)
        indices = [CountIndex(c, L) if c > 0 else None for c in range(k + 1)]
        vectors = [idx.all_vectors() if idx else np.zeros((1, L), dtype=np.int32) for idx in indices]
        log_fact = np.array([lgamma(i + 1) for i in range(k + 1)])
        self.matrix = np.zeros((game.num_global_states, index.size, index.size))
        for g in range(game.num_global_states):
            log_p = np.log(np.maximum(next_probs[:, g, :], 1e-300))  # (L, L)
            for row, counts in enumerate(index.all_vectors()):
                dist, size = np.ones(1), 0
                for s in np.flatnonzero(counts):
                    c = int(counts[s])
                    outcomes = vectors[c]
                    pmf = np.exp(log_fact[c] - log_fact[outcomes].sum(axis=1) + outcomes @ log_p[s])
                    combined = (vectors[size][:, None, :] + outcomes[None, :, :]).reshape(-1, L)
                    size += c
                    ranks = indices[size].rank(combined)
                    dist = np.bincount(ranks, weights=np.outer(dist, pmf).ravel(), minlength=indices[size].size)
                self.matrix[g, row] = dist

    def expect(self, values: np.ndarray) -> np.ndarray:
        return np.einsum("gfh,eh->gfe", self.matrix, values)


def _check_m(m: int) -> None:
    if m < 1:
        raise GameValidationError(f"m (next-state samples per entry) must be >= 1, got {m}")


def _check_exact_size(k: int, size: int) -> None:
    if size > EXACT_MAX_COUNT_VECTORS:
        raise GameValidationError(
            f"the exact G-LEARN operator is dense in count vectors; k={k} has {size} "
            f"(> {EXACT_MAX_COUNT_VECTORS}); use method='sampled' for this k"
        )


# --- the Bellman iteration ---------------------------------------------------------------

@dataclass
class SubsampleReward:
    """r(s_g, F, a_g) = r_g(s_g, a_g) + (1/k) sum_s F_s E_{pi_l}[r_l(s, s_g, a_l)], kept as its two terms."""

    global_part: np.ndarray  # (G, B)
    local_part: np.ndarray  # (G, #F)

    def add_to(self, q: np.ndarray) -> np.ndarray:
        q += self.local_part[:, :, None]
        q += self.global_part[:, None, :]
        return q

    def full(self) -> np.ndarray:
        return self.add_to(np.zeros(self.local_part.shape + self.global_part.shape[1:]))


def subsample_reward(game: TabularGame, local_policy: np.ndarray, index: CountIndex) -> SubsampleReward:
    mean_local = index.all_vectors() @ game.expected_local_reward(local_policy) / index.k  # (#F, G)
    return SubsampleReward(game.global_reward, np.ascontiguousarray(mean_local.T))


def solve_bellman(game: TabularGame, reward: SubsampleReward, transition: CountTransition, tol: float,
                  max_iters: int, q_init: np.ndarray | None = None,
                  actions: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
    """Iterate Q <- r + gamma P_g W(V) to MacQueen tolerance. Returns (Q, iterations, bound).

    V = max_a Q, or with `actions` (G, #F) V = Q[.., actions]: the Q of that fixed global
    policy (policy evaluation; the same bound holds). Works in place on one Q buffer, so
    the peak is about two Q-sized arrays.
    """
    if not tol > 0:
        raise GameValidationError(f"tol must be > 0, got {tol}")
    if max_iters < 1:
        raise GameValidationError(f"max_iters must be >= 1, got {max_iters}")
    shape = reward.local_part.shape + (game.num_global_actions,)
    budget.check(budget.bellman_bytes(*shape), f"the G-LEARN Bellman iteration over a {shape} Q table", REDUCE)
    if isinstance(transition, SampledCountTransition) and count_kernels.COMPILED and actions is None:
        return _solve_sampled_compiled(game, reward, transition, tol, max_iters, q_init)
    gamma = game.gamma
    scale = gamma / (1.0 - gamma)
    values = np.zeros(shape[:2]) if q_init is None else q_init.max(axis=-1)
    q = np.empty(shape)
    transition_to_next = np.ascontiguousarray(game.global_transition.transpose(0, 2, 1))  # (G, G', B)
    bound = np.inf
    iteration = 0
    while iteration < max_iters:
        iteration += 1
        expected_next = transition.expect(values)  # (G, #F, G')
        np.matmul(expected_next, transition_to_next, out=q)  # sum_h W[g, F, h] P_g[g, b, h]
        del expected_next
        q *= gamma
        reward.add_to(q)
        new_values = q.max(axis=-1) if actions is None else np.take_along_axis(q, actions[..., None], -1)[..., 0]
        new_values -= values  # the change, in place
        low, high = float(new_values.min()), float(new_values.max())
        new_values += values
        values = new_values
        bound = scale * (high - low) / 2.0
        if bound < tol:
            break
    else:
        log.warning("G-LEARN stopped at max_iters=%d with error bound %.3g > tol=%.3g", max_iters, bound, tol)
    q += scale * (high + low) / 2.0
    return q, iteration, bound


class AndersonMixer:
    """Anderson acceleration of the Bellman iteration on V (type II, memory `count_kernels.ANDERSON_MEMORY`).

    Why: at gamma = 0.95 plain value iteration needs ~35 sweeps at tol 0.01; mixing the last
    few iterates by least squares on their residuals needs about half. The residual's mean is
    removed first (T commutes with constants, and MacQueen's bound ignores them). Safeguard:
    when a sweep's bound is not below the best so far, the history is dropped and the plain
    step T(V) is taken. Any V is a valid point for MacQueen's bound, so acceleration changes
    how fast the bound falls, never what it certifies. The passes are `count_kernels`' fixed
    chunks, so the iterates do not depend on thread counts.
    """

    def __init__(self, shape: tuple[int, int], memory: int = count_kernels.ANDERSON_MEMORY) -> None:
        size = shape[0] * shape[1]
        self.memory = memory
        self.residual, self.last_image = np.empty(size), np.empty(size)
        # the history in float32: it only chooses the next iterate, and any iterate is valid for the bound
        self.delta_residual = np.empty((memory, size), dtype=np.float32)
        self.delta_image = np.empty((memory, size), dtype=np.float32)
        self.gram = np.zeros((memory, memory))
        self.products = np.zeros(2 * memory)
        self.held = 0  # differences held, in slots 0 .. held-1
        self.slot = 0  # where the next difference goes
        self.started = False
        self.best_bound = np.inf

    def next_point(self, values: np.ndarray, image: np.ndarray, bound: float, out: np.ndarray) -> None:
        """Write the next V into `out` (may be `values`) from V and T(V), both (#F, G) float64."""
        restart = bound >= self.best_bound
        self.best_bound = min(self.best_bound, bound)
        mean_change = (count_kernels.total(image.ravel()) - count_kernels.total(values.ravel())) / values.size
        if not self.started or restart:
            np.subtract(image.ravel(), values.ravel(), out=self.residual)
            self.residual -= mean_change
            self.last_image[:] = image.ravel()
            self.held, self.slot, self.started = 0, 0, True
            out[...] = image
            return
        slot, held = self.slot, min(self.held + 1, self.memory)
        count_kernels.anderson_update(values, image, mean_change, self.residual, self.last_image,
                                      self.delta_residual, self.delta_image, slot, held, self.products)
        self.gram[slot, :held] = self.gram[:held, slot] = self.products[:held]
        self.held, self.slot = held, (slot + 1) % self.memory
        gram = self.gram[:held, :held]
        ridge = 1e-10 * max(float(np.trace(gram)), 1e-300)
        try:
            weights = np.linalg.solve(gram + ridge * np.eye(held), self.products[self.memory:self.memory + held])
        except np.linalg.LinAlgError:
            self.started = False
            out[...] = image
            return
        count_kernels.anderson_mix(image, self.delta_image[:held], weights, out)


def _solve_sampled_compiled(game: TabularGame, reward: SubsampleReward, transition: SampledCountTransition,
                            tol: float, max_iters: int, q_init: np.ndarray | None) -> tuple[np.ndarray, int, float]:
    """solve_bellman with the compiled sweep of `count_kernels`, accelerated (`AndersonMixer`).

    Only V (#F, G, in the transition's locality order) lives between sweeps. Once a sweep meets
    the tolerance, Q is computed from the same V, so the returned Q is T(V) for the V whose
    bound was met, shifted as above.
    """
    G, S = transition.shape
    gamma = float(game.gamma)
    scale = gamma / (1.0 - gamma)
    order = transition.order
    values = np.zeros((S, G)) if q_init is None else np.ascontiguousarray(q_init.max(axis=-1).T[order])
    image = np.empty_like(values)
    lows, highs = np.empty(count_kernels.CHUNKS), np.empty(count_kernels.CHUNKS)
    arrays = (transition.next_by_position, order)
    model = (np.ascontiguousarray(reward.local_part[:, order]), np.ascontiguousarray(reward.global_part, dtype=float),
             np.ascontiguousarray(game.global_transition), gamma)
    mixer = AndersonMixer(values.shape)
    bound, iteration = np.inf, 0
    while iteration < max_iters:
        iteration += 1
        count_kernels.bellman_sweep(*arrays, values, *model, image, lows, highs)
        low, high = float(lows.min()), float(highs.max())
        bound = scale * (high - low) / 2.0
        if bound < tol or iteration == max_iters:
            break
        mixer.next_point(values, image, bound, out=values)
    if bound >= tol:
        log.warning("G-LEARN stopped at max_iters=%d with error bound %.3g > tol=%.3g", max_iters, bound, tol)
    del mixer
    q = np.empty((G, S, game.num_global_actions))
    count_kernels.bellman_sweep(*arrays, values, *model, image, lows, highs, q=q)
    q += scale * (high + low) / 2.0
    return q, iteration, bound


def check_glearn_budget(game: TabularGame, k: int, *, method: str = "sampled", m: int = 8,
                        rng: np.random.Generator | None = None) -> int:
    """Validate g_learn's method, m and rng, and refuse it before allocating if it exceeds the memory budget."""
    if method not in ("sampled", "exact"):
        raise GameValidationError(f"G-LEARN method must be 'sampled' or 'exact', got {method!r}")
    G, B, L, A = game.num_global_states, game.num_global_actions, game.num_local_states, game.num_local_actions
    size = budget.count_vectors(k, L)
    if method == "sampled":
        if rng is None:
            raise GameValidationError("sampled G-LEARN needs an rng (np.random.Generator) for its draws")
        _check_m(m)
        operator = f"sampled operator (m={m}) {budget.format_bytes(budget.sampled_operator_bytes(G, k, L, m))}"
    else:
        _check_exact_size(k, size)
        operator = f"exact operator {budget.format_bytes(budget.exact_operator_bytes(G, k, L))}"
    return budget.check(
        budget.glearn_bytes(G, B, L, k, m, method, A),
        f"G-LEARN at k={k} ({budget.format_count(size)} count vectors of {L} local states, {G} global states, "
        f"{B} actions; Q table {budget.format_bytes(budget.q_table_bytes(G, k, L, B))}, {operator})", REDUCE)


def g_learn(game: TabularGame, local_policy: np.ndarray, k: int, *, method: str = "sampled", m: int = 8,
            tol: float = 0.01, max_iters: int = 2000, rng: np.random.Generator | None = None,
            q_init: np.ndarray | None = None, actions: np.ndarray | None = None) -> GLearnResult:
    """Best response of the global agent seeing a k-subsample, with `local_policy` frozen.

    With `actions` (G, #F): the Q of that fixed global policy instead, on the same operator.
    """
    check_population(game.n, k)
    local_policy = check_local_policy(game, local_policy)
    check_glearn_budget(game, k, method=method, m=m, rng=rng)
    start = time.perf_counter()
    index = CountIndex(k, game.num_local_states)
    if method == "sampled":
        transition = SampledCountTransition(game, local_policy, index, m, rng)
    else:
        transition, m = ExactCountTransition(game, local_policy, index), 0
    reward = subsample_reward(game, local_policy, index)
    q, iterations, bound = solve_bellman(game, reward, transition, tol, max_iters, q_init, actions)
    seconds = time.perf_counter() - start
    log.info("G-LEARN k=%d (%s, %d count vectors, m=%d): %d iterations, error bound %.3g, %.2fs",
             k, method, index.size, m, iterations, bound, seconds)
    return GLearnResult(q, k, method, m, iterations, bound, seconds)


# --- online G-LEARN on live subsamples ----------------------------------------------------

class OnlineGLearner:
    """Q-learning of one visited entry at a time, as the coordinator runs it on live robots.

    The step size is `learning_rate` if given, else 1/(1+visits)^0.8 per entry.
    Actions are epsilon-greedy, ties to the lowest index; all draws come from `rng`.
    """

    def __init__(self, game: TabularGame, k: int, rng: np.random.Generator, *, epsilon: float = 0.1,
                 learning_rate: float | None = None, q_values: np.ndarray | None = None) -> None:
        check_population(game.n, k)
        if not 0.0 <= epsilon <= 1.0:
            raise GameValidationError(f"epsilon must lie in [0, 1], got {epsilon}")
        if learning_rate is not None and not 0.0 < learning_rate <= 1.0:
            raise GameValidationError(f"learning_rate must lie in (0, 1], got {learning_rate}")
        self.game, self.k, self.rng = game, k, rng
        self.epsilon, self.learning_rate = epsilon, learning_rate
        G, L, B = game.num_global_states, game.num_local_states, game.num_global_actions
        budget.check(budget.online_glearn_bytes(G, k, L, B),
                     f"online G-LEARN at k={k} (Q table and visit counts over "
                     f"{budget.format_count(budget.count_vectors(k, L))} count vectors)", REDUCE)
        self.index = CountIndex(k, game.num_local_states)
        shape = (game.num_global_states, self.index.size, game.num_global_actions)
        if q_values is None:
            q_values = np.zeros(shape)
        q_values = np.asarray(q_values, dtype=np.float64)
        if q_values.shape != shape:
            raise GameValidationError(f"Q table for k={k} must have shape {shape}, got {q_values.shape}")
        self.q_values = q_values.copy()
        self.visits = np.zeros(shape, dtype=np.int64)

    def _entry(self, global_state: int, counts: np.ndarray) -> tuple[int, int]:
        if not 0 <= int(global_state) < self.game.num_global_states:
            raise GameValidationError(
                f"global state {global_state} out of range [0, {self.game.num_global_states})")
        counts = self.index.check(counts)
        return int(global_state), int(self.index.rank(counts))

    def act(self, global_state: int, counts: np.ndarray, explore: bool = True) -> int:
        g, f = self._entry(global_state, counts)
        if explore and self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.game.num_global_actions))
        return int(np.argmax(self.q_values[g, f]))

    def update(self, global_state: int, counts: np.ndarray, action: int, reward: float,
               next_global_state: int, next_counts: np.ndarray) -> float:
        """Apply one Q update to the visited entry; returns the TD error."""
        g, f = self._entry(global_state, counts)
        g2, f2 = self._entry(next_global_state, next_counts)
        if not 0 <= int(action) < self.game.num_global_actions:
            raise GameValidationError(f"action {action} out of range [0, {self.game.num_global_actions})")
        if not np.isfinite(reward):
            raise GameValidationError(f"reward must be finite, got {reward}")
        target = reward + self.game.gamma * self.q_values[g2, f2].max()
        td_error = target - self.q_values[g, f, action]
        self.visits[g, f, action] += 1
        alpha = self.learning_rate or 1.0 / (1.0 + self.visits[g, f, action]) ** 0.8
        self.q_values[g, f, action] += alpha * td_error
        return float(td_error)
