"""Benchmark: time and peak memory of the evaluation protocol as the population size n grows.

For each n, one fresh process builds the zones task with that n and the
uniform local policy, gets a global policy (by default greedy in G-LEARN's Q at
k=5, learned in the same process and NOT timed; ``--policy constant`` uses
``GlobalPolicy.constant(game, k)``), then times
``evaluate(game, global_policy, local_policy, seeds=range(S), rollouts=R)``:
the default protocol is 15 seeds x 50 rollouts x the task's horizon (50).

Run:  python3 benchmarks/eval_protocol.py [--n 1e3 1e5 1e6] [--json out.json]
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
TARGET_SECONDS = 5.0  # the target for one evaluation, at any n


def measure_evaluation(case: dict[str, Any]) -> dict[str, Any]:
    """Child: learn (untimed) or build the global policy, then time one evaluation."""
    import numpy as np

    from altmarl_ros.marl.evaluation import evaluate
    from altmarl_ros.marl.glearn import g_learn
    from altmarl_ros.marl.policies import GlobalPolicy, uniform_local_policy
    from altmarl_ros.tasks import make_game

    rss_after_imports = current_rss_mib()
    game = make_game("zones", {"n": case["n"]})
    local_policy = uniform_local_policy(game)
    policy_start = time.perf_counter()
    if case["policy"] == "learned":
        learned = g_learn(game, local_policy, case["k"], method="sampled", m=8, tol=0.01,
                          rng=np.random.default_rng(0))
        global_policy = GlobalPolicy.from_q(learned.q_values, case["k"])
    else:
        global_policy = GlobalPolicy.constant(game, case["k"])
    policy_seconds = time.perf_counter() - policy_start
    rss_before_eval = current_rss_mib()

    start = time.perf_counter()
    report = evaluate(game, global_policy, local_policy, seeds=tuple(range(case["seeds"])),
                      rollouts=case["rollouts"])
    seconds = time.perf_counter() - start
    return {
        "horizon": game.horizon,
        "seconds": seconds,
        "evaluate_reported_seconds": report.seconds,
        "policy_seconds": policy_seconds,
        "return_mean": report.return_mean,
        "return_std": report.return_std,
        "mode_accuracy": report.mode_accuracy,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_imports_mib": rss_after_imports,
        "rss_before_eval_mib": rss_before_eval,
        **package_versions(),
    }


def run_child(case_json: str) -> None:
    """Entry point of the hidden ``--one`` mode."""
    use_repo_package()
    emit_result(measure_evaluation(json.loads(case_json)))


def population_size(text: str) -> int:
    """Parse n given as an integer or in float notation (1e6)."""
    value = float(text)
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"n must be a positive integer, got {text}")
    return int(value)


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    policy = (f"greedy in G-LEARN Q (k={args.k}, sampled, m=8, tol=0.01, seed 0; learned untimed)"
              if args.policy == "learned" else f"GlobalPolicy.constant(k={args.k}, action 0)")
    horizon = rows[0]["horizon"] if rows else "?"
    print(f"\nEvaluation protocol: zones task, uniform local policy, global policy = {policy};\n"
          f"{args.seeds} seeds x {args.rollouts} rollouts x horizon {horizon}; one fresh process per n\n")
    print(format_table(
        ["n", "eval s", "return mean ± std", "mode acc", "peak RSS MiB", "after imports MiB",
         "peak - imports MiB", f"t / {TARGET_SECONDS:g} s target"],
        [[f"{r['n']:,}", f"{r['seconds']:.3f}", f"{r['return_mean']:.3f} ± {r['return_std']:.3f}",
          f"{r['mode_accuracy']:.4f}", f"{r['peak_rss_mib']:.1f}", f"{r['rss_after_imports_mib']:.1f}",
          f"{r['rss_delta_mib']:.1f}", f"{r['time_vs_target']:.2f}x"] for r in rows],
    ))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=population_size, nargs="+", default=[1000, 100_000, 1_000_000],
                        help="population sizes (1e3 notation accepted)")
    parser.add_argument("--policy", choices=("learned", "constant"), default="learned",
                        help="global policy: greedy in G-LEARN's Q (default) or a constant action")
    parser.add_argument("--k", type=int, default=5, help="subsample size of the global policy")
    parser.add_argument("--seeds", type=int, default=15, help="evaluation seeds 0..S-1")
    parser.add_argument("--rollouts", type=int, default=50, help="rollouts per seed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        run_child(args.one)
        return
    rows = []
    for n in args.n:
        print(f"n={n} ...", file=sys.stderr, flush=True)
        case = {"n": n, "k": args.k, "policy": args.policy, "seeds": args.seeds, "rollouts": args.rollouts}
        result = run_case(SCRIPT, case)
        rows.append({
            "n": n,
            **result,
            "rss_delta_mib": result["peak_rss_mib"] - result["rss_after_imports_mib"],
            "time_vs_target": result["seconds"] / TARGET_SECONDS,
        })
    print_table(rows, args)
    if args.json:
        write_json(args.json, {
            "benchmark": "eval_protocol",
            "command": [sys.executable, *sys.argv],
            "settings": {"task": "zones", "local_policy": "uniform", "global_policy": args.policy, "k": args.k,
                         "seeds": args.seeds, "rollouts": args.rollouts},
            "targets": {"seconds": TARGET_SECONDS},
            "machine": machine_info(),
            "results": rows,
        })
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
