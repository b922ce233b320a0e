"""`altmarl sweep`: one training run per (k, seed), evaluated by the protocol; sweep.csv, a table and plots."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from altmarl_ros.cli._args import (
    POSITIVE,
    _add_alternation_args,
    _add_task_args,
    _int_list,
    _seed_list,
)
from altmarl_ros.cli._config import _deep_config, _learner, _task_overrides, tabular_setup
from altmarl_ros.cli.train import _shown
from altmarl_ros.marl.defaults import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS
from altmarl_ros.marl.errors import AltmarlError

log = logging.getLogger("altmarl")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `sweep` subparser, its handler cmd_sweep."""
    p = sub.add_parser("sweep", parents=[common], help="train and evaluate at several k; CSV and plots",
                       description="One training run per k; writes sweep.csv, reward/NE-gap/mode-accuracy/"
                       "G-LEARN-time plots, and each k's checkpoint under OUT/k<K>/.")
    _add_task_args(p)
    p.add_argument("--k", type=_int_list, required=True, help="comma-separated k values, e.g. 1,2,3,5,10,20,35,50")
    p.add_argument("--out", type=Path, required=True, help="output directory (a new or empty one, or an existing "
                   "sweep with --force)")
    p.add_argument("--force", action="store_true", help="overwrite the sweep already in --out; each k's run is "
                   "replaced only once its new run is complete")
    p.add_argument("--final-seeds", type=POSITIVE, default=len(DEFAULT_EVAL_SEEDS),
                   help="protocol seeds (default %(default)s)")
    p.add_argument("--final-rollouts", type=POSITIVE, default=DEFAULT_ROLLOUTS,
                   help="protocol rollouts (default %(default)s)")
    p.add_argument("--seeds", type=_seed_list, help="training seeds, e.g. 0,1,2 (default: --seed); with several, "
                   "runs go to OUT/k<K>-s<SEED>/")
    p.add_argument("--jobs", type=POSITIVE, default=None,
                   help="(k, seed) jobs run at once in local processes (default: the cores this process may use); "
                   "results are bit for bit those of --jobs 1")
    p.add_argument("--markdown", action="store_true", help="also print the table in markdown (the README's)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the jobs on the Ray cluster at ADDRESS (e.g. "
                   "ray://head:10001 or auto), or `local` to start one here with --jobs CPUs (needs: pip install ray)")
    _add_alternation_args(p)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train and evaluate at every k (and seed); every k is checked against the task before the first run."""
    from altmarl_ros.sweep import SWEEP_CSV, check_sweep_dir, plot_sweep, run_sweep

    if _learner(args) == "deep":
        return _sweep_deep(args)
    overrides, game, config = tabular_setup(args)
    for k in args.k:
        config.validate(game, k)
    check_sweep_dir(args.out, force=args.force)
    jobs = _jobs_that_fit(_sweep_jobs(args), max(config.memory_bytes(game, k) for k in args.k), args.ray)
    try:
        rows = run_sweep(args.task, args.k, args.out, seed=args.seed, overrides=overrides, config=config,
                         eval_seeds=args.final_seeds, eval_rollouts=args.final_rollouts, progress=not args.quiet,
                         seeds=args.seeds, jobs=jobs, ray_address=args.ray)
    except OSError as exc:
        raise _sweep_save_error(args, exc) from exc
    seeds = args.seeds or [args.seed]
    fit = plot_sweep(rows, args.out, title=f"{args.task}, n = {game.n}, seed{'s' if len(seeds) > 1 else ''} "
                     f"{','.join(map(str, seeds))}")
    print(f"{'k':>4} {'seed':>4} {'return':>16} {'mode acc':>9} {'start':>8} {'global gap':>18} {'local gap':>10} "
          f"{'train s':>8} {'cert s':>7}")
    for r in rows:
        print(f"{r['k']:>4} {r['seed']:>4} {r['return_mean']:>9.2f} ± {r['return_std']:<5.2f} "
              f"{r['mode_accuracy']:>9.3f} {r['best_start']:>8} {r['global_gap']:>9.3f} ± {r['global_gap_ci95']:<6.3f} "
              f"{_shown(r['local_gap'], 4):>10.4f} "
              f"{r['train_seconds']:>8.1f} {r['certificate_seconds']:>7.1f}")
    print(f"log-log slope of the global gap vs k: {fit.slope:.3f} "
          f"({fit.points_used} points, {fit.points_dropped} non-positive gaps left out)")
    print(monotonicity_line(rows, args.final_seeds))
    if args.markdown:
        print()
        print(markdown_table(rows, args.final_seeds))
    print(f"wrote {Path(args.out) / SWEEP_CSV} and plots in {args.out}")
    return 0


def _return_ci95(row: dict[str, Any], protocol_seeds: int) -> float:
    """Half-width of the 95 % interval of the protocol return (return_std is the std of per-seed means)."""
    from altmarl_ros.marl.certificate import t_quantile

    return t_quantile(protocol_seeds - 1) * float(row["return_std"]) / math.sqrt(protocol_seeds) \
        if protocol_seeds > 1 else float("nan")


def monotonicity_line(rows: list[dict[str, Any]], protocol_seeds: int) -> str:
    """Whether the return is non-decreasing in k within the 95 % intervals (each k against the next)."""
    by_k = sorted(rows, key=lambda r: (int(r["k"]), int(r["seed"])))
    if len({int(r["k"]) for r in by_k}) < len(by_k) or len(by_k) < 2:
        return "return vs k: one row per k needed to check monotonicity"
    drops = [f"k={a['k']}->{b['k']}" for a, b in zip(by_k, by_k[1:], strict=False)
             if b["return_mean"] + _return_ci95(b, protocol_seeds) < a["return_mean"] - _return_ci95(a, protocol_seeds)]
    return ("return non-decreasing in k within the 95 % intervals" if not drops
            else f"return decreases in k beyond the 95 % intervals at {', '.join(drops)}")


def markdown_table(rows: list[dict[str, Any]], protocol_seeds: int) -> str:
    """The sweep as the README's markdown table."""
    lines = ["| k | return (95 % CI) | mode acc. | best start | global NE gap (95 % CI) | local gap | train s | "
             "certificate s |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (int(r["k"]), int(r["seed"]))):
        gap = ("not computed" if math.isnan(float(r["global_gap"]))
               else f"{r['global_gap']:.2f} ± {r['global_gap_ci95']:.2f}")
        local = "not computed" if math.isnan(float(r["local_gap"])) else f"{_shown(r['local_gap'], 3):.3f}"
        lines.append(f"| {r['k']} | {r['return_mean']:.2f} ± {_return_ci95(r, protocol_seeds):.2f} | "
                     f"{r['mode_accuracy']:.3f} | {r['best_start']} | {gap} | {local} | {r['train_seconds']:.1f} | "
                     f"{r['certificate_seconds']:.1f} |")
    return "\n".join(lines)


def _sweep_jobs(args: argparse.Namespace) -> int:
    from altmarl_ros.parallel import available_cores

    return args.jobs if args.jobs is not None else available_cores()


def _jobs_that_fit(jobs: int, job_bytes: int, ray_address: str | None) -> int:
    """Local processes whose runs fit the memory budget together (each is checked alone against all of it)."""
    from altmarl_ros.marl import budget

    if ray_address not in (None, "local"):
        return jobs  # the cluster's nodes have their own memory
    limit, source = budget.budget_and_source()
    fitting = max(1, limit // max(job_bytes, 1))
    if jobs > fitting:
        log.warning("running %d job(s) at once instead of %d: each needs up to %s and the memory budget is %s (%s)",
                    fitting, jobs, budget.format_bytes(job_bytes), budget.format_bytes(limit), source)
        return fitting
    return jobs


def _sweep_save_error(args: argparse.Namespace, exc: OSError) -> AltmarlError:
    where = f" ({exc.filename})" if isinstance(exc.filename, str) else ""
    return AltmarlError(f"could not write the sweep to --out {args.out}: {exc.strerror or exc}{where}; the runs "
                        f"and rows written before are complete")


def _sweep_deep(args: argparse.Namespace) -> int:
    from altmarl_ros.sweep import SWEEP_CSV, aggregate_by_k, check_sweep_dir, plot_sweep, run_deep_sweep
    from altmarl_ros.tasks import make_env

    overrides, _ = _task_overrides(args)
    env = make_env(args.task, overrides)
    config = _deep_config(args)
    for k in args.k:
        config.validate(env, k)
    check_sweep_dir(args.out, force=args.force)
    seeds = args.seeds or [args.seed]
    try:
        rows, baselines = run_deep_sweep(args.task, args.k, seeds, args.out, overrides, config, args.final_seeds,
                                         args.final_rollouts, progress=not args.quiet, jobs=_sweep_jobs(args),
                                         ray_address=args.ray)
    except OSError as exc:
        raise _sweep_save_error(args, exc) from exc
    plot_sweep(rows, args.out, title=f"{args.task} (deep), n = {env.n}, seeds {seeds}", baselines=baselines)
    print(f"{'k':>4} {'seeds':>5} {'return (mean ± std over seeds)':>31} {'mode acc':>16} "
          f"{'random dispatcher':>18} {'train s':>8}")
    for r in aggregate_by_k(rows):
        print(f"{r['k']:>4} {r['seeds']:>5} {r['return_mean']:>20.2f} ± {r['return_mean_seed_std']:<8.2f} "
              f"{r['mode_accuracy']:>7.3f} ± {r['mode_accuracy_seed_std']:<6.3f} "
              f"{r['random_dispatcher_return']:>18.2f} {r['train_seconds']:>8.0f}")
    print(f"random dispatcher with random robots: {baselines['random_return_mean']:.2f} ± "
          f"{baselines['random_return_std']:.2f}, mode accuracy {baselines['random_mode_accuracy']:.3f}")
    print(f"wrote {Path(args.out) / SWEEP_CSV} and plots in {args.out}")
    return 0
