"""`altmarl eval`: a trained run by its task's protocol (return, mode accuracy, the NE gap)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

from altmarl_ros.cli._args import POSITIVE, _check_output_file
from altmarl_ros.marl.defaults import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS

log = logging.getLogger("altmarl")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `eval` subparser, its handler cmd_eval."""
    p = sub.add_parser("eval", parents=[common], help="evaluate a trained run by the task's protocol",
                       description="Discounted return and mode-tracking accuracy over seeds x rollouts, "
                       "and the NE gap (recorded at training, or re-measured with --gap).")
    p.add_argument("run", type=Path, help="run directory or checkpoint.npz")
    p.add_argument("--seeds", type=POSITIVE, default=len(DEFAULT_EVAL_SEEDS),
                   help="evaluation seeds 0..S-1 (S >= 1, default %(default)s)")
    p.add_argument("--rollouts", type=POSITIVE, default=DEFAULT_ROLLOUTS,
                   help="rollouts per seed (default %(default)s)")
    p.add_argument("--n", type=int, help="evaluate with another number of robots (default: the trained n)")
    p.add_argument("--gap", action="store_true", help="re-measure the global NE gap with the full protocol")
    p.add_argument("--k-ref", type=POSITIVE, default=60, help="reference k for --gap (default 60, capped at n)")
    p.add_argument("--federated-seeds", type=POSITIVE, default=10,
                   help="federated runs: seeds of the real federated optimisation check (default 10)")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate a random dispatcher with the trained robots, and with random robots")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a tabular or deep run; with --gap, re-measure its global NE gap against a fresh reference."""
    import numpy as np

    from altmarl_ros.marl.alternation import AlternationConfig
    from altmarl_ros.marl.certificate import global_gap
    from altmarl_ros.marl.checkpoint import atomic_write_text, load_checkpoint
    from altmarl_ros.marl.evaluation import evaluate
    from altmarl_ros.marl.glearn import g_learn
    from altmarl_ros.marl.policies import GlobalPolicy
    from altmarl_ros.runs import load, require_tabular
    from altmarl_ros.tasks import make_env

    checkpoint = load_checkpoint(args.run)
    _check_output_file(args.json, "--json")
    run = load(args.run, checkpoint=checkpoint)
    if run.learner == "deep":
        return _eval_deep(args, run)
    trained = require_tabular(run)
    game = trained.game if args.n is None else trained.game.with_n(args.n)
    seeds = list(range(args.seeds))
    report = evaluate(game, trained.global_policy, trained.local_policy, seeds, args.rollouts)
    result = _report_eval(args, trained.meta, trained.meta["task"], trained.k, game.n, game.horizon, report)
    if args.gap:
        k_ref = min(game.n, args.k_ref)
        log.info("measuring the global gap by the protocol against the full-observation reference k_ref=%d", k_ref)
        alternation = trained.meta.get("alternation", {})
        defaults = AlternationConfig()
        reference = g_learn(game, trained.local_policy, k_ref, m=alternation.get("reference_m", defaults.reference_m),
                            tol=alternation.get("reference_tol", defaults.reference_tol),
                            rng=np.random.default_rng(trained.meta.get("seed", 0)))
        ref_policy = GlobalPolicy.from_q(reference.q_values, k_ref, observation="full")
        gap = global_gap(game, trained.global_policy, ref_policy, trained.local_policy, seeds, args.rollouts)
        result["global_gap_protocol"] = dataclasses.asdict(gap)
        print(f"  global gap (protocol, k_ref={k_ref})  {gap.gap:.3f} ± {gap.ci95:.3f} (a lower bound; reference "
              f"|Q - Q*| <= {reference.error_bound:.3g})")
    if trained.meta["task"] == "federated":
        result["federated_check"] = _federated_check(args, trained)
    if args.baselines:
        result["baselines"] = _print_baselines(make_env(trained.meta["task"], {**trained.meta.get("task_overrides", {}),
                                                                                "n": game.n}),
                                               trained.local_policy, trained.k, seeds, args.rollouts)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _report_eval(args: argparse.Namespace, meta: dict[str, Any], label: str, k: int, n: int, horizon: int,
                 report: Any) -> dict[str, Any]:
    """Print the protocol's numbers and the NE gap stored at training; return them as a JSON-ready dict."""
    stored = meta.get("ne_gap", {})
    nan = float("nan")
    print(f"{label} k={k} n={n}: {len(report.seeds)} seeds x {args.rollouts} rollouts x horizon {horizon} "
          f"in {report.seconds:.2f}s")
    print(f"  discounted return   {report.return_mean:.3f} ± {report.return_std:.3f} (std of per-seed means)")
    print(f"  mode accuracy       {report.mode_accuracy:.4f}")
    local_ci = f" ± {stored['local_ci95']:.3f}" if stored.get("local_ci95") else ""
    if math.isnan(float(stored.get("global", nan))) and math.isnan(float(stored.get("local", nan))):
        print("  NE gap (training)   not computed (trained without the certificate)")
    else:
        print(f"  NE gap (training)   global {stored.get('global', nan):.3f} ± {stored.get('global_ci95', nan):.3f}, "
              f"local {stored.get('local', nan):.4f}{local_ci}")
    return {"run": str(args.run), "task": meta["task"], "k": k, "n": n, "return_mean": report.return_mean,
            "return_std": report.return_std, "mode_accuracy": report.mode_accuracy, "seeds": len(report.seeds),
            "rollouts": args.rollouts, "eval_seconds": report.seconds, "ne_gap_at_training": stored}


def _federated_check(args: argparse.Namespace, trained: Any) -> dict[str, Any]:
    """The real numpy federated run of a federated policy pair, against fixed step sizes (tasks/federated_check)."""
    from altmarl_ros.tasks.federated_check import federated_check, format_report

    seeds = list(range(args.federated_seeds))
    report = federated_check(trained, seeds)
    print(f"  real federated optimisation, {len(seeds)} seeds (true global loss; lower is better):")
    print("    " + format_report(report).replace("\n", "\n    "))
    return dataclasses.asdict(report)


def _print_baselines(env, local_policy, k: int, seeds: list[int], rollouts: int) -> dict[str, float]:
    from altmarl_ros.marl.baselines import RandomGlobalPolicy, UniformLocalPolicy
    from altmarl_ros.marl.rollouts import evaluate_env

    dispatcher = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, k, 0), local_policy, seeds, rollouts)
    random = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, k, 0),
                          UniformLocalPolicy(env.num_local_actions), seeds, rollouts)
    print(f"  random dispatcher, trained robots   {dispatcher.return_mean:.3f} ± {dispatcher.return_std:.3f}, "
          f"mode accuracy {dispatcher.mode_accuracy:.4f}")
    print(f"  random dispatcher, random robots    {random.return_mean:.3f} ± {random.return_std:.3f}, "
          f"mode accuracy {random.mode_accuracy:.4f}")
    return {"random_dispatcher_return": dispatcher.return_mean, "random_return": random.return_mean}


def _eval_deep(args: argparse.Namespace, trained: Any) -> int:
    from altmarl_ros.marl.checkpoint import atomic_write_text
    from altmarl_ros.marl.deep.learners import DeepConfig, DeepLearners
    from altmarl_ros.marl.rollouts import evaluate_env
    from altmarl_ros.tasks import make_env
    run = trained.actors()
    env = run.env if args.n is None else make_env(run.meta["task"], {**run.meta.get("task_overrides", {}),
                                                                        "n": args.n})
    seeds = list(range(args.seeds))
    report = evaluate_env(env, run.global_policy, run.local_policy, seeds, args.rollouts)
    result = _report_eval(args, run.meta, f"{run.meta['task']} (deep)", run.k, env.n, env.horizon, report)
    result["learner"] = "deep"
    if run.meta["task"] == "federated":
        result["federated_check"] = _federated_check(args, trained)
    if args.baselines:
        result["baselines"] = _print_baselines(env, run.local_policy, run.k, seeds, args.rollouts)
    if args.gap:
        log.info("re-estimating the NE gap: DQN with full observation and a fresh PPO best response")
        config = DeepConfig.from_mapping(run.meta.get("deep"))
        cert = DeepLearners(env, run.k, config, int(run.meta.get("seed", 0)), progress=not args.quiet).certify(
            run.global_policy, run.local_policy)
        result["ne_gap_protocol"] = dataclasses.asdict(cert)
        print(f"  NE gap (re-estimated) global {cert.global_gap:.3f} ± {cert.global_gap_ci95:.3f}, "
              f"local {cert.local_gap:.3f} ± {cert.local_gap_ci95:.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0
