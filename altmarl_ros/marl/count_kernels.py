"""The two inner loops of sampled G-LEARN: drawing next count vectors and the Bellman sweep.

Why compiled: at k = 50 the sampled operator has 12.6 M entries (m = 8) and each needs k
uniforms; vectorised numpy spends its time building temporaries, scipy's sparse product
another two thirds. With numba (a dependency of the package) both loops run compiled over
every core.

Why counter-based draws: the uniform of agent a in sample j of count vector F is a
SplitMix64 hash of the key and the draw's index, not the next value of a stream (and the
|S_g| rows of F share it: common random numbers, each row's m draws still exact). So the compiled kernel and
the numpy reference below give the same next count vectors bit for bit, for any number of
threads. Work is split into `CHUNKS` fixed row ranges, so the sweep's numbers do not depend
on the thread count either.

Every output array is allocated by the caller, so the memory budget (and tracemalloc in the
tests) sees it.
"""

from __future__ import annotations

import importlib.util

import numpy as np

# numba is imported, and the kernels compiled or loaded from its cache, on first use (`_load`): the ROS 2
# nodes import this module through the budget but never run a kernel. Without numba (a ROS 2 machine
# without it, the Jazzy CI lane) the numpy path runs.
numba = None
COMPILED = importlib.util.find_spec("numba") is not None
CHUNKS = 256  # fixed row ranges of a kernel call; the results do not depend on the thread count
UNIFORM_BITS = 24  # each uniform: 24 bits of a 64-bit hash (two per hash)
ANDERSON_MEMORY = 3  # past residual differences glearn.AndersonMixer mixes
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW24 = np.uint64((1 << UNIFORM_BITS) - 1)


def thresholds(next_cdf: np.ndarray) -> np.ndarray:
    """Integer CDF levels (L, G * (L-1)) int32: a 24-bit uniform u ends at or below state t iff u < level.

    `next_cdf` (L, G, L-1) is P(s_l' <= t | s_l, s_g) under the frozen policy, rounded to
    float32; u / 2^24 < c exactly when u < ceil(c * 2^24). Column g * (L-1) + t.
    """
    L = next_cdf.shape[0]
    levels = np.ceil(next_cdf.astype(np.float32).astype(np.float64) * (1 << UNIFORM_BITS))
    return np.ascontiguousarray(levels.reshape(L, -1).astype(np.int32))


# --- numpy reference -----------------------------------------------------------------------------------

def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def uniforms_numpy(key: int, rows: np.ndarray, m: int, k: int) -> np.ndarray:
    """The 24-bit uniforms (len(rows), m, k) of count vectors `rows`: agent a of sample j of row f."""
    pairs = (k + 1) // 2
    agent = np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = (rows.astype(np.uint64)[:, None] * np.uint64(m) + np.arange(m, dtype=np.uint64)) * np.uint64(pairs)
        z = _mix(np.uint64(key) + (base[:, :, None] + agent // np.uint64(2) + np.uint64(1)) * _GOLDEN)
        return np.where(agent % np.uint64(2) == 0, z >> np.uint64(64 - UNIFORM_BITS),
                        (z >> np.uint64(8)) & _LOW24).astype(np.int64)


def draw_next_ranks_numpy(vectors: np.ndarray, order: np.ndarray, position: np.ndarray, levels: np.ndarray,
                          binom: np.ndarray, key: int, out: np.ndarray, rows_per_chunk: int = 2048) -> None:
    """Reference of `draw_next_ranks`, vectorised over count vectors; the same draws bit for bit."""
    G, S, m = out.shape
    L = vectors.shape[1]
    k = int(vectors[0].sum())
    levels = levels.reshape(L, G, L - 1)
    agent_state = np.repeat(np.tile(np.arange(L), S), vectors.ravel()).reshape(S, k)
    for start in range(0, S, rows_per_chunk):
        stop = min(start + rows_per_chunk, S)
        rows = order[start:stop]
        u = uniforms_numpy(key, rows, m, k)  # (rows, m, k), shared by every s_g
        states = agent_state[rows]
        for g in range(G):
            level = levels[states, g]  # (rows, k, L-1)
            cumulative = (u[..., None] < level[:, None, :, :]).sum(axis=2)  # (rows, m, L-1): next state <= t
            ranks = np.zeros((stop - start, m), dtype=np.int64)
            for t in range(L - 1):
                ranks += binom[cumulative[..., t] + t, t + 1]
            out[g, start:stop] = position[ranks]


def locality_order(vectors: np.ndarray) -> np.ndarray:
    """Count vectors sorted along a Z-order (Morton) curve of their first L-1 counts.

    F' lies near F, so rows visited in this order gather from a small, cache-resident
    part of V; in rank order consecutive rows jump across it. Identity where the
    interleaved code would not fit 64 bits.
    """
    S, L = vectors.shape
    bits = max(1, int(vectors.max()).bit_length()) if S else 1
    if L < 2 or (L - 1) * bits > 64:
        return np.arange(S, dtype=np.int64)
    code = np.zeros(S, dtype=np.uint64)
    columns = vectors[:, :-1].astype(np.uint64)
    for bit in range(bits):
        for i in range(L - 1):
            code |= ((columns[:, i] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(bit * (L - 1) + i)
    return np.argsort(code, kind="stable")


# --- compiled kernels ------------------------------------------------------------------------------------

def _draw_next_ranks(vectors, order, position, levels, binom, key, out):  # pragma: no cover - compiled
    """m next count vectors per (s_g, F): out[g, p, j] = position of F'_j for the count vector order[p].

    The uniforms of (F, j) are keyed by F's rank and shared by every s_g; `levels` is
    (L, G * (L-1)) int32, so each agent is one run of contiguous compares (vectorised).
    """
    G, S, m = out.shape
    L = vectors.shape[1]
    width = levels.shape[1]
    k = 0
    for s in range(L):
        k += vectors[0, s]
    pairs = (k + 1) // 2
    ukey = np.uint64(key)
    for chunk in numba.prange(CHUNKS):
        below = np.zeros(width, dtype=np.int32)  # [g * (L-1) + t]: agents whose next state is <= t
        for p in range(chunk * S // CHUNKS, (chunk + 1) * S // CHUNKS):
            f = order[p]
            for j in range(m):
                below[:] = 0
                counter = (np.uint64(f) * np.uint64(m) + np.uint64(j)) * np.uint64(pairs) + np.uint64(1)
                a = 0
                z = np.uint64(0)
                for s in range(L):
                    level = levels[s]
                    for _ in range(vectors[f, s]):
                        if a % 2 == 0:  # agent 2i: the high 24 bits of hash i, agent 2i+1: bits 8..31
                            z = ukey + counter * _GOLDEN
                            counter += np.uint64(1)
                            z = (z ^ (z >> np.uint64(30))) * _MIX1
                            z = (z ^ (z >> np.uint64(27))) * _MIX2
                            z = z ^ (z >> np.uint64(31))
                            u = np.int32(z >> np.uint64(64 - UNIFORM_BITS))
                        else:
                            u = np.int32((z >> np.uint64(8)) & _LOW24)
                        for i in range(width):
                            below[i] += np.int32(level[i] > u)
                        a += 1
                for g in range(G):
                    rank = 0
                    for t in range(L - 1):
                        rank += binom[below[g * (L - 1) + t] + t, t + 1]
                    out[g, p, j] = position[rank]


def _sum_next_values(next_ranks, values, g, f):  # pragma: no cover - compiled
    """sum_j values[F'_j, h] for h < 8, in registers; one tight loop per number of global states."""
    G, _, m = next_ranks.shape
    w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
    if G == 1:
        for j in range(m):
            w0 += values[np.uint64(next_ranks[g, f, j]), 0]
    elif G == 2:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
    elif G == 3:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
    elif G == 4:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
            w3 += values[n, 3]
    elif G == 5:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
            w3 += values[n, 3]
            w4 += values[n, 4]
    elif G == 6:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
            w3 += values[n, 3]
            w4 += values[n, 4]
            w5 += values[n, 5]
    elif G == 7:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
            w3 += values[n, 3]
            w4 += values[n, 4]
            w5 += values[n, 5]
            w6 += values[n, 6]
    else:
        for j in range(m):
            n = np.uint64(next_ranks[g, f, j])
            w0 += values[n, 0]
            w1 += values[n, 1]
            w2 += values[n, 2]
            w3 += values[n, 3]
            w4 += values[n, 4]
            w5 += values[n, 5]
            w6 += values[n, 6]
            w7 += values[n, 7]
    return w0, w1, w2, w3, w4, w5, w6, w7


def _bellman_sweep_narrow(next_ranks, order, values, local_part, global_part, transition, gamma, new_values, lows,
                          highs):  # pragma: no cover - compiled
    """One sweep for at most 8 global states, W in registers; every array in position order."""
    G, S, m = next_ranks.shape
    B = global_part.shape[1]
    scale = gamma / m
    for chunk in numba.prange(CHUNKS):
        low = np.inf
        high = -np.inf
        for g in range(G):
            for p in range(chunk * S // CHUNKS, (chunk + 1) * S // CHUNKS):
                w0, w1, w2, w3, w4, w5, w6, w7 = _sum_next_values_jit(next_ranks, values, g, p)
                best = -np.inf
                here = local_part[g, p]
                for b in range(B):
                    acc = w0 * transition[g, b, 0]
                    if G > 1:
                        acc += w1 * transition[g, b, 1]
                    if G > 2:
                        acc += w2 * transition[g, b, 2]
                    if G > 3:
                        acc += w3 * transition[g, b, 3]
                    if G > 4:
                        acc += w4 * transition[g, b, 4]
                    if G > 5:
                        acc += w5 * transition[g, b, 5]
                    if G > 6:
                        acc += w6 * transition[g, b, 6]
                    if G > 7:
                        acc += w7 * transition[g, b, 7]
                    best = max(best, scale * acc + here + global_part[g, b])
                new_values[p, g] = best
                change = best - values[p, g]
                low = min(low, change)
                high = max(high, change)
        lows[chunk] = low
        highs[chunk] = high


def _bellman_q(next_ranks, order, values, local_part, global_part, transition, gamma, q, new_values, lows,
               highs):  # pragma: no cover - compiled
    """The same sweep for any number of global states, also storing Q[g, order[p], b] (rank order)."""
    G, S, m = next_ranks.shape
    B = global_part.shape[1]
    scale = gamma / m
    store = q.shape[0] > 0
    for chunk in numba.prange(CHUNKS):
        w = np.zeros(G)
        low = np.inf
        high = -np.inf
        for g in range(G):
            for p in range(chunk * S // CHUNKS, (chunk + 1) * S // CHUNKS):
                f = order[p]
                if G <= 8:  # the registers' gather, then W into the array
                    w0, w1, w2, w3, w4, w5, w6, w7 = _sum_next_values_jit(next_ranks, values, g, p)
                    w[0] = w0
                    for h, wh in enumerate((w1, w2, w3, w4, w5, w6, w7)):
                        if h + 1 < G:
                            w[h + 1] = wh
                else:
                    w[:] = 0.0
                    for j in range(m):
                        n = np.uint64(next_ranks[g, p, j])
                        for h in range(G):
                            w[h] += values[n, h]
                best = -np.inf
                here = local_part[g, p]
                for b in range(B):
                    acc = 0.0
                    for h in range(G):
                        acc += w[h] * transition[g, b, h]
                    value = scale * acc + here + global_part[g, b]
                    if store:
                        q[g, f, b] = value
                    best = max(best, value)
                new_values[p, g] = best
                change = best - values[p, g]
                low = min(low, change)
                high = max(high, change)
        lows[chunk] = low
        highs[chunk] = high


def _chunked_dot(a, b):  # pragma: no cover - compiled
    """sum_i a[i] b[i] over fixed chunks, so the digits do not depend on the thread count (unlike BLAS)."""
    n = a.size
    partial = np.empty(CHUNKS)
    for chunk in numba.prange(CHUNKS):
        total = 0.0
        for i in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
            total += a[i] * b[i]
        partial[chunk] = total
    total = 0.0
    for chunk in range(CHUNKS):
        total += partial[chunk]
    return total


def _chunked_sum(a):  # pragma: no cover - compiled
    n = a.size
    partial = np.empty(CHUNKS)
    for chunk in numba.prange(CHUNKS):
        total = 0.0
        for i in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
            total += a[i]
        partial[chunk] = total
    total = 0.0
    for chunk in range(CHUNKS):
        total += partial[chunk]
    return total


def total(a: np.ndarray) -> float:
    """A thread-count-independent sum of a contiguous 1-D float64 array."""
    if COMPILED:
        return float(_launch("_sum", a.size, a))
    return float(sum(float(part.sum()) for part in np.array_split(a, CHUNKS)))


def _anderson_update(values, image, mean_change, residual, last_image, delta_residual, delta_image, slot, held,
                     products):  # pragma: no cover - compiled
    """One pass: r = T(V) - V - mean; the newest differences into `slot`; their dot products.

    products[i] = dr_slot . dr_i for the held slots i, products[memory + i] = dr_i . r.
    `residual`/`last_image` hold the previous point's on entry and this point's on exit.
    """
    n = values.size
    memory = delta_residual.shape[0]
    v, t = values.ravel(), image.ravel()
    partial = np.zeros((CHUNKS, 2 * memory))
    for chunk in numba.prange(CHUNKS):
        sums = np.zeros(2 * memory)
        for i in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
            r = t[i] - v[i] - mean_change
            dr = r - residual[i]
            delta_residual[slot, i] = dr
            delta_image[slot, i] = t[i] - last_image[i]
            residual[i] = r
            last_image[i] = t[i]
            for h in range(held):  # slot h < held; delta_residual[slot, i] is dr already
                sums[h] += dr * delta_residual[h, i]
                sums[memory + h] += delta_residual[h, i] * r
        partial[chunk] = sums
    for h in range(2 * memory):
        total = 0.0
        for chunk in range(CHUNKS):
            total += partial[chunk, h]
        products[h] = total


def _anderson_mix(image, delta_image, weights, out):  # pragma: no cover - compiled
    """out = T(V) - sum_i weights[i] * delta_image[i]."""
    n = image.size
    t, o = image.ravel(), out.ravel()
    for chunk in numba.prange(CHUNKS):
        for i in range(chunk * n // CHUNKS, (chunk + 1) * n // CHUNKS):
            x = t[i]
            for h in range(weights.size):
                x -= weights[h] * delta_image[h, i]
            o[i] = x


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """A thread-count-independent dot product of two contiguous 1-D float64 arrays."""
    if COMPILED:
        return float(_launch("_dot", a.size, a, b))
    partial = [float(np.dot(x, y)) for x, y in zip(np.array_split(a, CHUNKS), np.array_split(b, CHUNKS),
                                                      strict=True)]
    return float(sum(partial))


NARROW_GLOBAL_STATES = 8
_NO_Q = np.empty((0, 0, 0))


def bellman_sweep(next_ranks: np.ndarray, order: np.ndarray, values: np.ndarray, local_part: np.ndarray,
                  global_part: np.ndarray, transition: np.ndarray, gamma: float, new_values: np.ndarray,
                  lows: np.ndarray, highs: np.ndarray, q: np.ndarray | None = None) -> None:
    """new_values[p, g] = max_b Q[g, order[p], b], Q = r + gamma P_g W(values); Q into `q` when given.

    Rows are positions along `order` (count vector order[p]); next_ranks holds positions too,
    so V is gathered where the rows around it are: Q alone is in rank order.

    lows/highs[c]: the extremes of new_values - values over chunk c (MacQueen's bound).
    The sum over the m samples and the products run in the same order in both kernels,
    so storing Q does not change a digit of new_values.
    """
    work = next_ranks.size * values.shape[1]
    if q is None and next_ranks.shape[0] <= NARROW_GLOBAL_STATES:
        _launch("_narrow", work, next_ranks, order, values, local_part, global_part, transition, gamma, new_values,
                lows, highs)
    else:
        _launch("_with_q", work, next_ranks, order, values, local_part, global_part, transition, gamma,
                _NO_Q if q is None else q, new_values, lows, highs)


def _kernel(name: str):
    _load()
    return globals()[name]


PARALLEL_WORK = 1 << 18  # below this many inner steps a kernel runs on one thread: a parallel launch costs ~1 ms


def _launch(kernel, work: int, *args):
    """Run a parallel kernel, on one thread when the work is small (the chunks, so the digits, are the same)."""
    kernel = _kernel(kernel)
    if work >= PARALLEL_WORK or numba.get_num_threads() == 1:
        return kernel(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)


def draw_next_ranks(vectors: np.ndarray, order: np.ndarray, position: np.ndarray, levels: np.ndarray,
                    binom: np.ndarray, key: int, out: np.ndarray) -> None:
    """m next count vectors per (s_g, F) into `out` (see _draw_next_ranks); numpy reference without numba."""
    if not COMPILED:
        draw_next_ranks_numpy(vectors, order, position, levels, binom, key, out)
        return
    _launch("_draw", out.size * int(vectors[0].sum()), vectors, order, position, levels, binom, key, out)


def anderson_update(values, image, mean_change, residual, last_image, delta_residual, delta_image, slot, held,
                    products) -> None:
    """See _anderson_update (compiled only)."""
    _launch("_anderson_update_jit", values.size * (held + 2), values, image, mean_change, residual, last_image,
            delta_residual, delta_image, slot, held, products)


def anderson_mix(image, delta_image, weights, out) -> None:
    """See _anderson_mix (compiled only)."""
    _launch("_anderson_mix_jit", image.size * (len(weights) + 1), image, delta_image, weights, out)


_JIT = {"parallel": True, "cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


def _load() -> None:
    """Import numba and build the kernels' dispatchers once (compiling happens at their first call)."""
    global numba, _draw, _sum_next_values_jit, _narrow, _with_q, _dot, _sum, _anderson_update_jit, _anderson_mix_jit
    if numba is not None:
        return
    import numba as imported

    numba = imported
    _sum_next_values_jit = numba.njit(inline="always", cache=True, error_model="numpy",
                                      boundscheck=False)(_sum_next_values)
    _draw = numba.njit(**_JIT)(_draw_next_ranks)
    _narrow = numba.njit(**_JIT)(_bellman_sweep_narrow)
    _with_q = numba.njit(**_JIT)(_bellman_q)
    _dot = numba.njit(**_JIT)(_chunked_dot)
    _sum = numba.njit(**_JIT)(_chunked_sum)
    _anderson_update_jit = numba.njit(**_JIT)(_anderson_update)
    _anderson_mix_jit = numba.njit(**_JIT)(_anderson_mix)
