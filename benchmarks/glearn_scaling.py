"""Benchmark: offline sampled G-LEARN time and peak memory as the subsample size k grows.

For each k, on the zones task with the uniform local policy, two fresh
processes run:

* ``glearn``: ``g_learn(game, policy, k, method='sampled', m, tol, rng=default_rng(seed))``,
  timed end to end; its peak RSS is the headline memory number.
* ``sample``: only ``SampledCountTransition(game, policy, CountIndex(k, L), m,
  default_rng(seed))`` (the same draws g_learn makes first), timed on its own.

The Bellman part is the remainder, ``glearn - sample`` (it also holds the
reward table and validation, both negligible).

Run:  python3 benchmarks/glearn_scaling.py [--k 5 10 20 35 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
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
TARGET_K = 50
TARGET_SECONDS = 20.0  # the target at k=50
TARGET_MIB = 500.0  # the target at k=50 ("500 MB", read as MiB)
REFERENCE_SECONDS = 21.5  # the authors' reference at k=50
REFERENCE_MIB = 1.99 * 1024  # the authors' reference at k=50 ("1.99 GB", read as GiB)


def _setup(case: dict[str, Any]) -> tuple[Any, Any, float]:
    """Import the package, record RSS, and build the game and the uniform local policy."""
    use_repo_package()
    from altmarl_ros.marl.policies import uniform_local_policy
    from altmarl_ros.tasks import make_game

    rss_after_imports = current_rss_mib()
    game = make_game("zones", {"n": case["n"]})
    return game, uniform_local_policy(game), rss_after_imports


def measure_glearn(case: dict[str, Any]) -> dict[str, Any]:
    """Child: one full sampled G-LEARN run."""
    import numpy as np

    from altmarl_ros.marl.counts import CountIndex
    from altmarl_ros.marl.glearn import g_learn

    game, policy, rss_after_imports = _setup(case)
    start = time.perf_counter()
    result = g_learn(game, policy, case["k"], method="sampled", m=case["m"], tol=case["tol"],
                     rng=np.random.default_rng(case["seed"]))
    seconds = time.perf_counter() - start
    return {
        "count_vectors": CountIndex(case["k"], game.num_local_states).size,
        "q_entries": int(result.q_values.size),
        "iterations": result.iterations,
        "error_bound": result.error_bound,
        "seconds": seconds,
        "glearn_reported_seconds": result.seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_imports_mib": rss_after_imports,
        **package_versions(),
    }


def measure_sampling(case: dict[str, Any]) -> dict[str, Any]:
    """Child: only the construction of the sampled count transition."""
    import numpy as np

    from altmarl_ros.marl.counts import CountIndex
    from altmarl_ros.marl.glearn import SampledCountTransition

    game, policy, rss_after_imports = _setup(case)
    start = time.perf_counter()
    index = CountIndex(case["k"], game.num_local_states)
    transition = SampledCountTransition(game, policy, index, case["m"], np.random.default_rng(case["seed"]))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "nnz": int(transition.matrix.nnz),
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_imports_mib": rss_after_imports,
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
    bellman = full["seconds"] - sampling["seconds"]
    row = {
        "k": k,
        **full,
        "sampling_seconds": sampling["seconds"],
        "sampling_peak_rss_mib": sampling["peak_rss_mib"],
        "transition_nnz": sampling["nnz"],
        "bellman_seconds": bellman,
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


def _ratio(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f}x" if key in row else "-"


def print_tables(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nSampled G-LEARN scaling: zones task, n={args.n}, uniform local policy, "
          f"m={args.m}, tol={args.tol}, rng=default_rng({args.seed}); one fresh process per measurement\n")
    print("Time (sampling = SampledCountTransition construction, in its own process; Bellman = total - sampling)")
    print(format_table(
        ["k", "count vectors", "Q entries", "iters", "total s", "sampling s", "Bellman s", "sampling %"],
        [[str(r["k"]), f"{r['count_vectors']:,}", f"{r['q_entries']:,}", str(r["iterations"]),
          f"{r['seconds']:.3f}", f"{r['sampling_seconds']:.3f}", f"{r['bellman_seconds']:.3f}",
          f"{100 * r['sampling_seconds'] / r['seconds']:.0f}"] for r in rows],
    ))
    print("\nMemory (MiB; peak = ru_maxrss of the g_learn process; after imports = VmRSS before building the game)")
    print(format_table(
        ["k", "peak RSS", "after imports", "peak - imports", "sampling-only peak"],
        [[str(r["k"]), f"{r['peak_rss_mib']:.1f}", f"{r['rss_after_imports_mib']:.1f}",
          f"{r['rss_delta_mib']:.1f}", f"{r['sampling_peak_rss_mib']:.1f}"] for r in rows],
    ))
    print(f"\nRatios at k={TARGET_K} (< 1 is better than the reference number)")
    print(format_table(
        ["k", f"t / {TARGET_SECONDS:g} s target", f"RSS / {TARGET_MIB:g} MiB target",
         f"t / {REFERENCE_SECONDS:g} s authors", "RSS / 1.99 GiB authors"],
        [[str(r["k"]), _ratio(r, "time_vs_target"), _ratio(r, "rss_vs_target"),
          _ratio(r, "time_vs_reference"), _ratio(r, "rss_vs_reference")] for r in rows if r["k"] == TARGET_K]
        or [[str(TARGET_K), "not run", "not run", "not run", "not run"]],
    ))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20, 35, 50], help="subsample sizes")
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
        rows.append(measure_k(k, args))
    print_tables(rows, args)
    if args.json:
        write_json(args.json, {
            "benchmark": "glearn_scaling",
            "command": [sys.executable, *sys.argv],
            "settings": {"task": "zones", "n": args.n, "m": args.m, "tol": args.tol, "seed": args.seed,
                         "method": "sampled", "local_policy": "uniform"},
            "targets": {"k": TARGET_K, "seconds": TARGET_SECONDS, "peak_rss_mib": TARGET_MIB},
            "reference": {"k": TARGET_K, "seconds": REFERENCE_SECONDS, "peak_rss_mib": REFERENCE_MIB},
            "machine": machine_info(),
            "results": rows,
        })
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
