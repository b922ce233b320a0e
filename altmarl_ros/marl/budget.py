"""The memory budget: estimate what a config implies and refuse it before anything is allocated.

Why: sizes here grow as C(k+L-1, L-1) count vectors (k robots observed, L local
states) and as Z^3 (the zones game's P_l); a typo in `--k`, `--set zones=...` or
a checkpoint's metadata would otherwise end in a MemoryError, an OverflowError
or the OOM killer, minutes in. Every allocating step calls `check` with an
estimate first and stops with a `MemoryBudgetError` that says what, how much,
the budget, and what to change.

The budget is ``ALTMARL_MEMORY_BUDGET`` if set (``8GiB``, ``500MB``, ``123456``
bytes: the syntax of `marl.config.parse_size`, which the CLI's ``--memory-budget``
flag uses to set it), else `DEFAULT_PERCENT` (50 %) of the memory this process
may use: the smallest of physical memory (``os.sysconf``, else ``MemTotal`` of
/proc/meminfo), the cgroup memory limit and ``RLIMIT_AS``; `FALLBACK_LIMIT`
(8 GiB, so a 4 GiB budget) when none can be read. The default does not depend
on what is free at the moment, so a config is refused or not the same way on
every run on a machine.

Estimates use exact integer arithmetic (`math.comb`, Python ints): an absurd
config gives an absurd number, never an OverflowError. Each is an upper bound
of the peak of the arrays that step allocates, numpy temporaries included
(checked against tracemalloc in test/test_memory_budget.py), not of the
interpreter and its libraries (a few hundred MB), which the other half of
memory is for.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from functools import cache
from math import comb

from altmarl_ros.marl import count_kernels
from altmarl_ros.marl.config import parse_size as _parse_size
from altmarl_ros.marl.defaults import MEMORY_BUDGET_ENV
from altmarl_ros.marl.errors import AltmarlError

ENV_VAR = MEMORY_BUDGET_ENV
CLI_FLAG = "--memory-budget"
DEFAULT_PERCENT = 50
FALLBACK_LIMIT = 8 * 2**30
F8, I4 = 8, 4  # bytes of a float64 / int64 entry, of an int32 / float32 entry
INDEX_LIMIT = 2**31 - 1  # scipy keeps int32 indices below this many entries
RANK_LIMIT = 2**62  # counts._binomial_table clips entries at this (ranks stay below 2^61)
SMALL_BYTES = 2**16  # what a builder's small arrays and objects take at most, beyond its estimate's terms
ARRAY_OVERHEAD = 256  # bytes of a small ndarray beyond its data (object, shape, strides)


class MemoryBudgetError(AltmarlError, ValueError):
    """A step would allocate more than the memory budget (or the budget itself is malformed)."""

    def __init__(self, message: str, estimate: int | None = None, budget: int | None = None) -> None:
        super().__init__(message)
        self.estimate, self.budget = estimate, budget


# --- sizes as text ---------------------------------------------------------------------------

def parse_size(text: str, name: str = ENV_VAR) -> int:
    """Bytes from "123456", "500MB" (powers of 1000) or "8GiB" (powers of 1024): the CLI's --memory-budget syntax."""
    try:
        return _parse_size(text)
    except ValueError as exc:
        raise MemoryBudgetError(f"{name}={text!r} is not a memory budget: {exc}") from None


def format_bytes(size: int) -> str:
    """A byte count in binary units (1.5 GiB); never overflows, whatever the size."""
    size = int(size)
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    if size >= 1024 ** (len(units) - 1) * 10**6:
        return f"2^{size.bit_length() - 1} B"
    power = 0
    while power < len(units) - 1 and size >= 1024 ** (power + 1):
        power += 1
    return f"{size} B" if power == 0 else f"{size / 1024 ** power:.1f} {units[power]}"


def format_count(count: int) -> str:
    """An integer with thousands separators, or its order of magnitude when it is astronomical."""
    count = int(count)
    if count < 10**15:
        return f"{count:,}"
    if count.bit_length() < 1000:
        return f"{float(count):.3g}"
    return f"2^{count.bit_length() - 1}"


# --- the budget --------------------------------------------------------------------------------

@cache
def _physical_memory() -> int | None:
    """Physical memory in bytes (fixed for the process: cached)."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            return int(pages) * int(page_size)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@cache
def _cgroup_limit() -> int | None:
    """The memory limit of this container's cgroup (v2, else v1), if there is one: the OOM killer's line."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's 2^63 - page: no limit
            return int(text)
    return None


def memory_limit() -> tuple[int, str]:
    """The memory this process may use, and what that number is (physical memory, cgroup, RLIMIT_AS)."""
    limits = []
    physical = _physical_memory()
    if physical:
        limits.append((physical, "physical memory"))
    cgroup = _cgroup_limit()
    if cgroup:
        limits.append((cgroup, "the cgroup memory limit"))
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY and soft > 0:
        limits.append((int(soft), "the address-space limit (RLIMIT_AS, ulimit -v)"))
    if not limits:
        return FALLBACK_LIMIT, "an assumed memory size (none could be read)"
    return min(limits)


def budget_and_source() -> tuple[int, str]:
    """The budget in bytes and a sentence on where it comes from."""
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        return parse_size(text), f"set by {ENV_VAR}={text}"
    limit, what = memory_limit()
    return limit * DEFAULT_PERCENT // 100, f"the default, {DEFAULT_PERCENT} % of the {format_bytes(limit)} of {what}"


def budget() -> int:
    """The memory budget in bytes (read every call, so a changed environment takes effect)."""
    return budget_and_source()[0]


def check(estimate_bytes: int, what: str, hint: str | None = None, detail: str | None = None) -> int:
    """Raise MemoryBudgetError if `estimate_bytes` exceeds the budget; return the estimate otherwise.

    The message names `what`, the estimate (and `detail`, its largest parts), the budget and where it
    comes from, what to reduce (`hint`, default: k, zones, k_ref or m) and how to raise the budget.
    """
    limit, source = budget_and_source()
    if estimate_bytes > limit:
        reduce = hint or "reduce k, zones, k_ref or m"
        detail = f" ({detail})" if detail else ""
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(estimate_bytes)}{detail}, more than the memory budget of "
            f"{format_bytes(limit)} ({source}); {reduce}; or raise the budget with {ENV_VAR}=SIZE or "
            f"{CLI_FLAG} SIZE (e.g. 32GiB)", estimate_bytes, limit)
    return estimate_bytes


def largest_fitting(cost: Callable[[int], int], low: int, high: int, limit: int | None = None) -> int | None:
    """The largest x in [low, high] with cost(x) <= limit (cost non-decreasing in x), or None if none fits."""
    limit = budget() if limit is None else limit
    if high < low or cost(low) > limit:
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


# --- count vectors (marl/counts.py) ---------------------------------------------------------------

def count_vectors(k: int, L: int) -> int:
    """C(k+L-1, L-1): how many count vectors k agents over L local states have."""
    return comb(k + L - 1, L - 1)


def binomial_table_bytes(k: int, L: int) -> int:
    """CountIndex's lookup table C(n, r), n <= k+L, r <= L, int64, and the float64 column built with it."""
    return 2 * F8 * (k + L + 1) * (L + 1)


def count_vectors_bytes(k: int, L: int) -> int:
    """The (#F, L) int32 array of every count vector (CountIndex.all_vectors)."""
    return I4 * L * count_vectors(k, L)


def compositions_cache_bytes(k: int, L: int) -> int:
    """What counts._enumerate_compositions keeps cached for (k, L): every (t <= k, p < L) and (k, L) itself.

    Level p holds sum_{t <= k} C(t+p-1, p-1) = C(k+p, p) rows of p entries, and
    sum_{p=1}^{L-1} p C(k+p, p) = (k+1) C(k+L, L-2) (hockey stick).
    """
    lower = (k + 1) * comb(k + L, L - 2) if L >= 2 else 0
    return I4 * (L * count_vectors(k, L) + lower) + ARRAY_OVERHEAD * (k + 1) * L


def all_vectors_peak_bytes(k: int, L: int) -> int:
    """Peak of CountIndex.all_vectors: the cache, the top level's blocks, ranking them, the sorted copy."""
    S = count_vectors(k, L)
    build = I4 * S * (L + 1)  # the blocks and their heads, concatenated into the cached top level
    rank = F8 * S * (2 * max(L - 1, 1) + 3)  # the bars (int64, twice while added) and the ranks
    return compositions_cache_bytes(k, L) + count_vectors_bytes(k, L) + max(build, rank) + 2 * F8 * S


# --- the game (marl/game.py) --------------------------------------------------------------------

def game_arrays_bytes(G: int, B: int, L: int, A: int) -> int:
    """Bytes of a TabularGame's float64 arrays: P_g, P_l, r_g, r_l and the initial distributions."""
    return F8 * (G * B * G + L * G * A * L + G * B + L * G * A + G + L)


def game_validation_bytes(G: int, B: int, L: int, A: int) -> int:
    """Temporaries of TabularGame's checks: a bool mask and the row sums of its largest array."""
    largest = max(G * B * G, L * G * A * L)
    return largest + 3 * F8 * max(G * B, L * G * A)


def local_model_bytes(G: int, L: int, A: int) -> int:
    """P(s_l'|s_l, s_g) and E[r_l] under a local policy, with the policy's own checks."""
    return F8 * (L * G * L + 3 * L * G * A) + L * G * A


# --- G-LEARN (marl/glearn.py) -----------------------------------------------------------------------

def q_table_bytes(G: int, k: int, L: int, B: int) -> int:
    """The float64 G-LEARN Q table (G, C(k+L-1, L-1), B)."""
    return F8 * G * count_vectors(k, L) * B


def action_table_bytes(G: int, k: int, L: int) -> int:
    """A GlobalPolicy's int64 action table (G, #count vectors)."""
    return F8 * G * count_vectors(k, L)


def _index_bytes(entries: int) -> int:
    return I4 if entries <= INDEX_LIMIT else F8


def sampled_operator_bytes(G: int, k: int, L: int, m: int) -> int:
    """The sampled operator: m int32 next positions per (s_g, F), the locality order and its inverse (int64)."""
    S = count_vectors(k, L)
    return I4 * G * S * m + 2 * F8 * S


def sampled_matrix_bytes(G: int, k: int, L: int, m: int) -> int:
    """Its CSR form (SampledCountTransition.matrix, the path without numba): data, indices, indptr,
    and the rank-order copy of the draws it is built from."""
    rows = G * count_vectors(k, L)
    nnz = rows * m
    index = _index_bytes(nnz)
    return F8 * nnz + index * nnz + index * (rows + 1) + I4 * nnz


def sampled_operator_build_bytes(G: int, k: int, L: int, m: int) -> int:
    """Peak of building it: the operator, the Morton codes and their argsort (about L+3 int64 per count vector),
    and without numba one chunk of the numpy reference's draws (2048 count vectors)."""
    S = count_vectors(k, L)
    order = F8 * S * (L + 3)
    build = sampled_operator_bytes(G, k, L, m) + order
    if not count_kernels.COMPILED:
        rows = min(S, 2048)
        agents = S * k * F8 + S * L * F8 * 2  # agent_state (int64) and repeat's inputs
        chunk = rows * m * k * (6 * F8 + L * 2) + rows * k * L * F8 + 2 * F8 * rows * m * L
        build += agents + chunk
    return build


def exact_operator_bytes(G: int, k: int, L: int) -> int:
    """The dense exact operator (G, #F, #F) float64."""
    S = count_vectors(k, L)
    return F8 * G * S * S


def exact_operator_build_bytes(G: int, k: int, L: int) -> int:
    """Peak of building it: the matrix, an index and the count vectors of every c <= k, one row's products.

    A row combines the outcomes of one state with those of the states before it:
    at most as many pairs as count vectors of k agents over 2L states.
    """
    vectors = 3 * I4 * L * comb(k + L, L)  # sum over c <= k of C(c+L-1, L-1) vectors: cached, sorted, in use
    tables = 2 * F8 * (L + 1) * (k * (k + 1) // 2 + k * (L + 1))  # sum over c <= k of binomial_table_bytes(c, L)
    row = (I4 * L + 3 * F8) * count_vectors(k, 2 * L)
    return exact_operator_bytes(G, k, L) + vectors + tables + row


def bellman_bytes(G: int, S: int, B: int) -> int:
    """solve_bellman over S count vectors.

    Compiled: V and T(V), the reordered local rewards, Anderson's residual, last image and
    2 x ANDERSON_MEMORY float32 differences while iterating; then Q with V, T(V) and the rewards.
    Without numba: Q, the value arrays and the expectation W[s_g, F, s_g'], plus the CSR operator.
    """
    if count_kernels.COMPILED:
        iterate = F8 * S * G * (5 + count_kernels.ANDERSON_MEMORY)  # the 2 x memory differences are float32
        small = F8 * (G * B * G + G * B + 4 * count_kernels.CHUNKS * count_kernels.ANDERSON_MEMORY) + SMALL_BYTES
        return max(iterate, F8 * S * (G * B + 3 * G)) + small
    return F8 * G * S * (B + G + 4)


def subsample_reward_bytes(G: int, k: int, L: int) -> int:
    """subsample_reward: the count vectors as float64 times E[r_l], divided by k, transposed."""
    S = count_vectors(k, L)
    return F8 * S * L + 3 * F8 * S * G


def glearn_bytes(G: int, B: int, L: int, k: int, m: int = 8, method: str = "sampled", A: int = 3) -> int:
    """Peak of one g_learn call (sampled or exact operator), the count-vector cache included."""
    S = count_vectors(k, L)
    kept = compositions_cache_bytes(k, L) + count_vectors_bytes(k, L) + binomial_table_bytes(k, L)
    if method == "exact":
        operator, build = exact_operator_bytes(G, k, L), exact_operator_build_bytes(G, k, L)
        expect = F8 * G * S * G  # the einsum's output
    else:
        operator, build = sampled_operator_bytes(G, k, L, m), sampled_operator_build_bytes(G, k, L, m)
        expect = 0 if count_kernels.COMPILED else sampled_matrix_bytes(G, k, L, m)
    reward = F8 * G * S
    steps = (all_vectors_peak_bytes(k, L) + binomial_table_bytes(k, L),
             kept + build,
             kept + operator + subsample_reward_bytes(G, k, L),
             kept + operator + reward + bellman_bytes(G, S, B) + expect)
    return max(steps) + local_model_bytes(G, L, A)


def online_glearn_bytes(G: int, k: int, L: int, B: int) -> int:
    """OnlineGLearner: Q (float64), its copy, the visit counts (int64)."""
    return 3 * q_table_bytes(G, k, L, B) + binomial_table_bytes(k, L)


# --- simulators, evaluation, L-LEARN -----------------------------------------------------------------

def count_population_step_bytes(batch: int, L: int, A: int) -> int:
    """CountPopulation.step: P_l rows gathered per rollout (batch, L, A, L), the multinomial's pvals and draws."""
    return 2 * F8 * batch * L * A * L + 6 * F8 * batch * L * A + 12 * F8 * batch * L


def agent_population_bytes(batch: int, n: int, L: int, A: int) -> int:
    """AgentPopulation: states (batch, n) and one step's per-agent rows of pi_l and P_l and their CDFs."""
    return 2 * F8 * batch * n * (L + A) + 12 * F8 * batch * n


WAREHOUSE_BYTES_PER_ROBOT = 768  # measured ~530 per robot and rollout (positions, features, the 64-64 actor's pass)


def warehouse_rollout_bytes(batch: int, n: int) -> int:
    """tasks/warehouse.py: one step of `batch` rollouts of n robots with per-robot positions."""
    return WAREHOUSE_BYTES_PER_ROBOT * batch * n


def rollout_bytes(batch: int, horizon: int, L: int, A: int, record_profiles: bool = False) -> int:
    """evaluation.rollout: per-step records (batch, horizon), profiles (batch, horizon, L) if kept, one step."""
    records = batch * (F8 + horizon + F8 * (horizon + 1) + F8 * horizon)
    profiles = F8 * batch * horizon * L if record_profiles else 0
    return records + profiles + count_population_step_bytes(batch, L, A)


def mean_field_bytes(batch: int, horizon: int, used_steps: int, L: int, A: int) -> int:
    """llearn.mean_field: a recorded rollout, then its profiles reshaped and weighted (twice)."""
    return rollout_bytes(batch, horizon, L, A, record_profiles=True) + 2 * F8 * batch * used_steps * (L + 3)


def local_value_iteration_bytes(G: int, L: int, A: int) -> int:
    """Exact L-LEARN: Q (G, L, A), the future term, r_l transposed, the values."""
    return 5 * F8 * G * L * A + 3 * F8 * G * L + F8 * G * G


def local_sampled_bytes(G: int, L: int, A: int, m: int) -> int:
    """Sampled L-LEARN: next (s_g', s_l') indices (int64) per (s_g, s_l, a_l, sample), gathered values."""
    return 4 * F8 * G * L * A * m + local_value_iteration_bytes(G, L, A)


def local_gap_bytes(G: int, L: int, A: int) -> int:
    """llearn.local_gap: the dense (G L) x (G L) linear system of V^pi (the matrix, I, gamma P, the solve)."""
    GL = G * L
    return 4 * F8 * GL * GL + F8 * G * L * L + local_value_iteration_bytes(G, L, A)


# --- the tabular alternation (marl/alternation.py) -----------------------------------------------------

def alternation_phases(G: int, B: int, L: int, A: int, k: int, *, m: int = 8, method: str = "sampled",
                       k_ref: int | None = 60, reference_m: int = 4, local_method: str = "exact", local_m: int = 64,
                       horizon: int = 50, eval_rollouts: int = 50, mean_field_batch: int = 200,
                       mean_field_horizon: int = 50, mean_field_used: int = 50,
                       certify_every_round: bool = False) -> tuple[int, list[tuple[str, int]]]:
    """What a tabular run keeps for its whole length, and the peak of each of its steps (k_ref None: no certificate).

    Kept: the game, the best round's and the previous round's Q table and policy at k (and, when
    every round is certified, the reference's previous Q at k_ref, its warm start), the
    count-vector caches of k and k_ref.
    """
    Sk_cache = compositions_cache_bytes(k, L)
    kept = (game_arrays_bytes(G, B, L, A) + 2 * (q_table_bytes(G, k, L, B) + action_table_bytes(G, k, L))
            + Sk_cache)
    ref_cache = 0
    if k_ref is not None:
        ref_cache = compositions_cache_bytes(k_ref, L)
        kept += ref_cache
        if certify_every_round:
            kept += q_table_bytes(G, k_ref, L, B) + action_table_bytes(G, k_ref, L)
    S = count_vectors(k, L)
    phases = [(f"G-LEARN at k={k} over {format_count(S)} count vectors with a "
               f"{format_bytes(q_table_bytes(G, k, L, B))} Q table",
               glearn_bytes(G, B, L, k, m, method, A) - Sk_cache + action_table_bytes(G, k, L))]
    if k_ref is not None:
        S_ref = count_vectors(k_ref, L)
        phases.append((f"the certificate's reference G-LEARN at k_ref={k_ref} over {format_count(S_ref)} count "
                       f"vectors with a {format_bytes(q_table_bytes(G, k_ref, L, B))} Q table",
                       glearn_bytes(G, B, L, k_ref, reference_m, method, A) - ref_cache
                       + action_table_bytes(G, k_ref, L)))
    phases.append(("the evaluation rollouts", rollout_bytes(eval_rollouts, horizon, L, A)))
    phases.append(("the mean field", mean_field_bytes(mean_field_batch, mean_field_horizon, mean_field_used, L, A)))
    local = (local_value_iteration_bytes(G, L, A) if local_method == "exact"
             else local_sampled_bytes(G, L, A, local_m))
    phases.append(("L-LEARN", local + local_model_bytes(G, L, A)))
    if k_ref is not None:
        phases.append(("the local NE gap", local_gap_bytes(G, L, A)))
    phases.append(("the checkpoint", q_table_bytes(G, k, L, B) + F8 * G * L * A * 2))
    return kept, phases


def alternation_bytes(G: int, B: int, L: int, A: int, k: int, **options) -> int:
    """Peak of a tabular run: what it keeps plus its largest step (see alternation_phases)."""
    kept, phases = alternation_phases(G, B, L, A, k, **options)
    return kept + max(size for _, size in phases)
