"""Benchmark: offline sampled G-LEARN time and peak memory as the subsample size k grows.

For each k, on the zones task with the uniform local policy, two fresh
processes run. Each first warms up: ``g_learn`` at k = 2 with the same settings,
so the numba kernels of ``altmarl_ros.marl.count_kernels`` are compiled, or
loaded from numba's on-disk cache, before the timer starts (that time is
reported on its own as "JIT/cache load"). Then:

* ``glearn``: ``g_learn(game, policy, k, method='sampled', m, tol, rng=default_rng(seed))``,
  timed end to end; the process's peak RSS is the headline memory number.
* ``sample``: only ``SampledCountTransition(game, policy, CountIndex(k, L), m,
  default_rng(seed))`` (the same draws g_learn makes first), timed on its own.
  Its CSR ``.matrix`` is never built (it is built lazily and only costs memory).

The Bellman part is the remainder, ``glearn - sample`` (it also holds the
reward table and validation, both negligible).

Run:  python3 benchmarks/glearn_scaling.py [--k 5 10 20 35 50 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    current_rss_mib,
    emit_result,
    format_table,
    machine_info,
    package_versions,
    peak_rss_mib,
    run_case,
    use_repo_package,
    write_json,
)

SCRIPT = str(Path(__file__).resolve())
WARMUP_K = 2  # the warm-up g_learn call's k: compiles / cache-loads every kernel, costs almost nothing else
TARGET_K = 50
TARGET_SECONDS = 2.0  # issue 11's target at k=50
TARGET_MIB = 500.0  # issue 11's target at k=50 ("500 MB", read as MiB)
REFERENCE_SECONDS = 21.5  # the authors' measurement at k=50, on an idle machine
REFERENCE_MIB = 1.99 * 1024  # the authors' measurement at k=50 ("1.99 GB", read as GiB)
LARGE_K = 100  # issue 11: must run; its time and memory are printed (no target)


def _cpu_seconds() -> tuple[float, float, float]:
    """(wall, busy CPU seconds of the whole machine from /proc/stat (nan without it), CPU seconds of our children)."""
    busy = float("nan")
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic(), busy, children.ru_utime + children.ru_stime


def _other_cpu_percent(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """CPU % (100 = one core) that processes other than this benchmark's used between two `_cpu_seconds`."""
    wall = after[0] - before[0]
    return 100.0 * max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / wall


def _vm_hwm_mib() -> float | None:
    """VmHWM (peak RSS since the last reset) from /proc/self/status, in MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_vm_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False where that fails."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _setup(case: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Import the package, build the game and the uniform local policy, warm the kernels up.

    Returns the game, the policy and the setup's own numbers (RSS after imports and
    after the warm-up, warm-up seconds, numba's state).
    """
    use_repo_package()
    import numpy as np

    from altmarl_ros.marl import count_kernels
    from altmarl_ros.marl.glearn import g_learn
    from altmarl_ros.marl.policies import uniform_local_policy
    from altmarl_ros.tasks import make_game

    rss_after_imports = current_rss_mib()
    game = make_game("zones", {"n": case["n"]})
    policy = uniform_local_policy(game)
    start = time.perf_counter()
    g_learn(game, policy, WARMUP_K, method="sampled", m=case["m"], tol=case["tol"],
            rng=np.random.default_rng(case["seed"]))
    warmup_seconds = time.perf_counter() - start
    info: dict[str, Any] = {
        "rss_after_imports_mib": rss_after_imports,
        "warmup_seconds": warmup_seconds,
        "rss_after_warmup_mib": current_rss_mib(),
        "numba_compiled": bool(count_kernels.COMPILED),
        "numba_threads": None,
        "numba": None,
    }
    if count_kernels.COMPILED:
        import numba

        info.update(numba_threads=int(numba.get_num_threads()), numba=numba.__version__)
    info["peak_reset"] = _reset_vm_hwm()  # from here VmHWM is the timed call's own peak
    return game, policy, info


def _timed_peak_mib(reset: bool) -> float | None:
    return _vm_hwm_mib() if reset else None


def measure_glearn(case: dict[str, Any]) -> dict[str, Any]:
    """Child: one full sampled G-LEARN run."""
    import numpy as np

    from altmarl_ros.marl.counts import CountIndex
    from altmarl_ros.marl.glearn import g_learn

    game, policy, info = _setup(case)
    start = time.perf_counter()
    result = g_learn(game, policy, case["k"], method="sampled", m=case["m"], tol=case["tol"],
                     rng=np.random.default_rng(case["seed"]))
    seconds = time.perf_counter() - start
    return {
        "count_vectors": CountIndex(case["k"], game.num_local_states).size,
        "global_states": int(game.num_global_states),
        "q_entries": int(result.q_values.size),
        "iterations": result.iterations,
        "error_bound": result.error_bound,
        "seconds": seconds,
        "glearn_reported_seconds": result.seconds,
        "peak_rss_mib": peak_rss_mib(),
        "timed_peak_rss_mib": _timed_peak_mib(info["peak_reset"]),
        **info,
        **package_versions(),
    }


def measure_sampling(case: dict[str, Any]) -> dict[str, Any]:
    """Child: only the construction of the sampled count transition (its CSR matrix is not built)."""
    import numpy as np

    from altmarl_ros.marl.counts import CountIndex
    from altmarl_ros.marl.glearn import SampledCountTransition

    game, policy, info = _setup(case)
    start = time.perf_counter()
    index = CountIndex(case["k"], game.num_local_states)
    transition = SampledCountTransition(game, policy, index, case["m"], np.random.default_rng(case["seed"]))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "draws": int(transition.next_by_position.size),
        "draws_mib": transition.next_by_position.nbytes / 2**20,
        "peak_rss_mib": peak_rss_mib(),
        "timed_peak_rss_mib": _timed_peak_mib(info["peak_reset"]),
        "warmup_seconds": info["warmup_seconds"],
    }


def run_child(case_json: str) -> None:
    """Entry point of the hidden ``--one`` mode."""
    use_repo_package()
    case = json.loads(case_json)
    measure = {"glearn": measure_glearn, "sample": measure_sampling}[case["kind"]]
    emit_result(measure(case))


def measure_k(k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Parent: both fresh-process measurements for one k, merged into one row."""
    case = {"k": k, "n": args.n, "m": args.m, "tol": args.tol, "seed": args.seed}
    full = run_case(SCRIPT, {**case, "kind": "glearn"})
    sampling = run_case(SCRIPT, {**case, "kind": "sample"})
    row = {
        "k": k,
        **full,
        "sampling_seconds": sampling["seconds"],
        "sampling_peak_rss_mib": sampling["peak_rss_mib"],
        "sampling_timed_peak_rss_mib": sampling["timed_peak_rss_mib"],
        "sampling_warmup_seconds": sampling["warmup_seconds"],
        "draws": sampling["draws"],
        "draws_mib": sampling["draws_mib"],
        "bellman_seconds": full["seconds"] - sampling["seconds"],
        "rss_delta_mib": full["peak_rss_mib"] - full["rss_after_imports_mib"],
    }
    if k == TARGET_K:
        row.update(
            time_vs_target=full["seconds"] / TARGET_SECONDS,
            rss_vs_target=full["peak_rss_mib"] / TARGET_MIB,
            time_vs_reference=full["seconds"] / REFERENCE_SECONDS,
            rss_vs_reference=full["peak_rss_mib"] / REFERENCE_MIB,
        )
    return row


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per target of issue 11: k=50 time and memory against the targets and the authors, k=100."""
    by_k = {r["k"]: r for r in rows}
    lines = []
    target = by_k.get(TARGET_K)
    if target is None:
        lines.append(f"k={TARGET_K}: not run (add it to --k)")
    else:
        t, rss = target["seconds"], target["peak_rss_mib"]
        lines.append(f"k={TARGET_K} time:   {t:.2f} s  vs target {TARGET_SECONDS:g} s: "
                     f"{'MET' if t <= TARGET_SECONDS else 'MISSED'} ({t / TARGET_SECONDS:.2f}x)  "
                     f"vs the authors' {REFERENCE_SECONDS:g} s: {t / REFERENCE_SECONDS:.3f}x "
                     f"({REFERENCE_SECONDS / t:.1f} times faster)")
        lines.append(f"k={TARGET_K} memory: {rss:.1f} MiB peak RSS ({rss * 2**20 / 1e6:.0f} MB)  "
                     f"vs target {TARGET_MIB:g} MiB: {'MET' if rss <= TARGET_MIB else 'MISSED'} "
                     f"({rss / TARGET_MIB:.2f}x)  vs the authors' 1.99 GB: {rss / REFERENCE_MIB:.3f}x "
                     f"({REFERENCE_MIB / rss:.1f} times less)")
    large = by_k.get(LARGE_K)
    if large is None:
        lines.append(f"k={LARGE_K}: not run (add it to --k)")
    else:
        lines.append(f"k={LARGE_K} ({large['count_vectors']:,} count vectors): ran, {large['seconds']:.2f} s, "
                     f"{large['peak_rss_mib']:.1f} MiB peak RSS ({large['peak_rss_mib'] / 1024:.2f} GiB), "
                     f"{large['iterations']} iterations, error bound {large['error_bound']:.4f}")
    return lines


def print_tables(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    first = rows[0]
    numba_state = (f"numba {first['numba']} active, {first['numba_threads']} threads" if first["numba_compiled"]
                   else "numba NOT installed: the numpy fallback ran")
    print(f"\nSampled G-LEARN scaling: zones task, n={args.n}, uniform local policy, "
          f"m={args.m}, tol={args.tol}, rng=default_rng({args.seed}); one fresh process per measurement; "
          f"{numba_state} (count_kernels.COMPILED={first['numba_compiled']})\n")
    print(f"Time (after a warm-up g_learn at k={WARMUP_K} in the same process; JIT/cache load = that warm-up; "
          "draw = SampledCountTransition construction, in its own process; Bellman = total - draw)")
    print(format_table(
        ["k", "count vectors", "Q entries", "iters", "error bound", "total s", "draw s", "Bellman s", "draw %",
         "JIT/cache load s"],
        [[str(r["k"]), f"{r['count_vectors']:,}", f"{r['q_entries']:,}", str(r["iterations"]),
          f"{r['error_bound']:.4f}", f"{r['seconds']:.3f}", f"{r['sampling_seconds']:.3f}",
          f"{r['bellman_seconds']:.3f}", f"{100 * r['sampling_seconds'] / r['seconds']:.0f}",
          f"{r['warmup_seconds']:.2f}"] for r in rows],
    ))
    print("\nMemory (MiB; peak RSS = ru_maxrss of the g_learn process, imports and warm-up included; "
          "timed-call peak = VmHWM reset after the warm-up; draws = next_by_position)")
    print(format_table(
        ["k", "peak RSS", "after imports", "after warm-up", "peak - imports", "timed-call peak", "draws",
         "draw-only peak"],
        [[str(r["k"]), f"{r['peak_rss_mib']:.1f}", f"{r['rss_after_imports_mib']:.1f}",
          f"{r['rss_after_warmup_mib']:.1f}", f"{r['rss_delta_mib']:.1f}", _mib(r["timed_peak_rss_mib"]),
          f"{r['draws_mib']:.1f}", f"{r['sampling_peak_rss_mib']:.1f}"] for r in rows],
    ))
    print(f"\nOther processes' CPU while each k ran (/proc/stat busy - this benchmark's children; 100 % = one of "
          f"{os.cpu_count()} cores): " + ", ".join(f"k={r['k']} {r['other_cpu_percent']:.0f} %" for r in rows))
    print(f"\nIssue 11 targets (k={TARGET_K}: <= {TARGET_SECONDS:g} s, <= {TARGET_MIB:g} MiB peak; "
          f"the authors measured {REFERENCE_SECONDS:g} s / 1.99 GB on an idle machine)")
    for line in target_lines(rows):
        print("  " + line)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 35, 50, 100], help="subsample sizes")
    parser.add_argument("--n", type=int, default=1000, help="population size of the zones task")
    parser.add_argument("--m", type=int, default=8, help="next-state samples per (s_g, F)")
    parser.add_argument("--tol", type=float, default=0.01, help="MacQueen error-bound tolerance")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling rng")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        run_child(args.one)
        return
    rows = []
    for k in args.k:
        print(f"k={k} ...", file=sys.stderr, flush=True)
        before = _cpu_seconds()
        row = measure_k(k, args)
        rows.append({**row, "other_cpu_percent": _other_cpu_percent(before, _cpu_seconds())})
    print_tables(rows, args)
    if args.json:
        write_json(args.json, {
            "benchmark": "glearn_scaling",
            "command": [sys.executable, *sys.argv],
            "settings": {"task": "zones", "n": args.n, "m": args.m, "tol": args.tol, "seed": args.seed,
                         "method": "sampled", "local_policy": "uniform", "warmup_k": WARMUP_K},
            "targets": {"k": TARGET_K, "seconds": TARGET_SECONDS, "peak_rss_mib": TARGET_MIB},
            "reference": {"k": TARGET_K, "seconds": REFERENCE_SECONDS, "peak_rss_mib": REFERENCE_MIB},
            "machine": machine_info(),
            "results": rows,
        })
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
