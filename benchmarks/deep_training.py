"""Benchmark: training time per run for each task, and the deep learners against the tabular ones on zones.

Each case trains one ALTERNATING-MARL run in a fresh process with the default
learner settings of `altmarl train` (tabular: AlternationConfig(); deep:
DeepConfig(), DQN + PPO on 1 torch thread) and evaluates the returned pair by
the task's protocol (15 seeds x 50 rollouts). The certificate is off for the
timing cases (`--certify` turns it on: the deep one trains a full-observation
DQN and a fresh PPO response on top).

Cases (default):
* zones, k = 5 and 20, tabular and deep: the ratio deep / tabular return is the
  issue's check (target >= 0.95);
* warehouse, k = 5, deep;
* federated, k = 5, tabular (config/federated.yaml's k_ref) and deep.

Run:  python3 benchmarks/deep_training.py [--cases zones:5 warehouse:5 ...] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    emit_result,
    format_table,
    machine_info,
    peak_rss_mib,
    run_case,
    use_repo_package,
    write_json,
)

SCRIPT = str(Path(__file__).resolve())
DEFAULT_CASES = ["zones:5:tabular", "zones:5:deep", "zones:20:tabular", "zones:20:deep", "warehouse:5:deep",
                 "federated:5:tabular", "federated:5:deep"]
TABULAR_OVERRIDES = {"federated": {"k_ref": 30}}  # as config/federated.yaml


def measure(case: dict[str, Any]) -> dict[str, Any]:
    """Child: train one run, evaluate it by the protocol."""
    use_repo_package()
    import torch

    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.marl.deep.learners import DeepConfig, deep_alternate
    from altmarl_ros.marl.evaluation import evaluate
    from altmarl_ros.marl.rollouts import evaluate_env
    from altmarl_ros.tasks import make_env, make_game

    task, k, learner = case["task"], case["k"], case["learner"]
    seeds = list(range(15))
    start = time.perf_counter()
    if learner == "tabular":
        game = make_game(task)
        config = AlternationConfig(certify=case["certify"], **TABULAR_OVERRIDES.get(task, {}))
        result = alternate(game, k, config, seed=case["seed"])
        train_seconds = time.perf_counter() - start
        report = evaluate(game, result.global_policy, result.local_policy, seeds, 50)
        gaps = (result.best.global_gap, result.best.local_gap)
        threads = torch.get_num_threads()
    else:
        env = make_env(task)
        config = DeepConfig(certify="final" if case["certify"] else "none")
        result = deep_alternate(env, k, config, seed=case["seed"])
        train_seconds = time.perf_counter() - start
        report = evaluate_env(env, result.global_policy, result.local_policy, seeds, 50)
        gaps = (result.best.global_gap, result.best.local_gap)
        threads = torch.get_num_threads()
    return {"train_seconds": train_seconds, "return_mean": report.return_mean, "return_std": report.return_std,
            "mode_accuracy": report.mode_accuracy, "global_gap": gaps[0], "local_gap": gaps[1],
            "eval_seconds": report.seconds, "peak_rss_mib": peak_rss_mib(), "torch_threads": threads,
            "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="task:k:learner (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--certify", action="store_true", help="include the NE-gap certificate in the timing")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        emit_result(measure(json.loads(args.one)))
        return
    rows = []
    for spec in args.cases:
        task, k, learner = spec.split(":")
        case = {"task": task, "k": int(k), "learner": learner, "seed": args.seed, "certify": args.certify}
        print(f"running {spec} ...", file=sys.stderr, flush=True)
        rows.append({**case, **run_case(SCRIPT, case)})
    table = []
    for row in rows:
        ratio = ""
        if row["learner"] == "deep":
            tab = [r for r in rows if r["task"] == row["task"] and r["k"] == row["k"] and r["learner"] == "tabular"]
            if tab:
                ratio = f"{row['return_mean'] / tab[0]['return_mean']:.3f}"
        table.append([row["task"], str(row["k"]), row["learner"], f"{row['train_seconds']:.1f}",
                      f"{row['return_mean']:.2f} ± {row['return_std']:.2f}", f"{row['mode_accuracy']:.3f}", ratio,
                      f"{row['peak_rss_mib']:.0f}"])
    print(format_table(["task", "k", "learner", "train s", "return (15x50 protocol)", "mode acc",
                        "deep/tabular", "peak MiB"], table))
    deep_threads = sorted({r["torch_threads"] for r in rows if r["learner"] == "deep"})
    print(f"machine: {machine_info()}; torch threads in the deep runs: {deep_threads}")
    if args.json:
        write_json(args.json, {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
