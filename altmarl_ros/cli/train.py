"""`altmarl train`: run ALTERNATING-MARL (tabular, or DQN + PPO) on one task and write the run directory."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from altmarl_ros.cli._args import _add_alternation_args, _add_task_args
from altmarl_ros.cli._config import _deep_config, _learner, _task_overrides, tabular_setup
from altmarl_ros.marl.errors import AltmarlError

log = logging.getLogger("altmarl")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `train` subparser, its handler cmd_train."""
    p = sub.add_parser("train", parents=[common], help="run ALTERNATING-MARL and write a checkpoint",
                       description="Alternate G-LEARN and L-LEARN, certify the NE gap each round, save the best pair.")
    _add_task_args(p)
    p.add_argument("--k", type=int, required=True, help="robots the coordinator observes per step (1 <= k <= n)")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoint.npz, history.csv, summary.json); "
                   "a new or empty directory, or an existing run with --force")
    p.add_argument("--force", action="store_true", help="replace the run already in --out; the old run stays "
                   "until the new one is complete, other files in --out are kept")
    _add_alternation_args(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train on the task, save the best pair; every input is checked before the first G-LEARN step."""
    # `alternate` is looked up on the package at call time, as it was on the one-module cli: tests and the fault
    # injection benchmark replace altmarl_ros.cli.alternate to stop or break the training they start.
    from altmarl_ros import cli
    from altmarl_ros.runs import check_run_dir, save

    if _learner(args) == "deep":
        return _train_deep(args)
    overrides, game, config = tabular_setup(args)
    config.validate(game, args.k)
    check_run_dir(args.out, force=args.force)
    log.info("training %s: n=%d, k=%d, seed=%d, %d rounds, k_ref=%d", args.task, game.n, args.k, args.seed,
             config.rounds, config.reference_k(game))
    start = time.perf_counter()
    result = cli.alternate(game, args.k, config, seed=args.seed, progress=not args.quiet)
    path = _save(save, result, args, overrides)
    _print_trained(f"{args.task} k={args.k} n={game.n} seed={args.seed}", time.perf_counter() - start, result, path,
                   tabular_gap_line(result.best, config.reference_k(game), config.certify))
    return 0


def tabular_gap_line(best: Any, k_ref: int, certified: bool) -> str:
    """The NE-gap line of a tabular run: what the certificate measured and what it bounds, or that it was not run."""
    if not certified:
        return "NE gap: not computed (--no-certify / --certify none)"
    return (f"NE gap: global {best.global_gap:.3f} ± {best.global_gap_ci95:.3f} (a lower bound: against a "
            f"full-observation reference at k_ref={k_ref}, |Q - Q*| <= {best.reference_error_bound:.3g}), "
            f"local {_shown(best.local_gap, 4):.4f} (exact)")


def _shown(value: float, digits: int) -> float:
    """A value as printed with `digits` decimals, without a '-0.000' for a measured -1e-9."""
    return round(float(value), digits) + 0.0


def _save(save: Callable[..., Path], result: Any, args: argparse.Namespace, overrides: dict[str, Any]) -> Path:
    """Save the trained run; an OS failure (e.g. a full disk) after training is a clear error, not a traceback."""
    try:
        return save(result, args.out, args.task, overrides)
    except OSError as exc:
        raise AltmarlError(f"could not save the run to --out {args.out}: {exc.strerror or exc}"
                           f"{' (' + exc.filename + ')' if isinstance(exc.filename, str) else ''}; what was in "
                           f"{args.out} before is unchanged") from exc


def _print_trained(what: str, seconds: float, result: Any, path: Path, gap_line: str) -> None:
    best = result.best
    print(f"trained {what} in {seconds:.1f}s")
    start = f" (start {best.start})" if getattr(best, "start", "uniform") != "uniform" else ""
    print(f"best round {result.best_round}/{len(result.rounds)}{start}: return {best.value_mean:.2f} ± "
          f"{best.value_std:.2f}, mode accuracy {best.mode_accuracy:.3f}")
    print(gap_line)
    print(f"checkpoint: {path}")


def _train_deep(args: argparse.Namespace) -> int:
    from altmarl_ros.marl.deep.learners import deep_alternate
    from altmarl_ros.runs import check_run_dir, save
    from altmarl_ros.tasks import make_env

    overrides, _ = _task_overrides(args)
    env = make_env(args.task, overrides)
    config = _deep_config(args)
    config.validate(env, args.k)
    check_run_dir(args.out, force=args.force)
    log.info("training %s with DQN + PPO: n=%d, k=%d, seed=%d, %d rounds, certificate: %s", args.task, env.n, args.k,
             args.seed, config.rounds, config.certify)
    result = deep_alternate(env, args.k, config, seed=args.seed, progress=not args.quiet)
    path = _save(save, result, args, overrides)
    best = result.best
    gap_line = (f"NE gap estimate: global {best.global_gap:.3f} ± {best.global_gap_ci95:.3f} (vs the same DQN with "
                f"full observation), local {best.local_gap:.3f} ± {best.local_gap_ci95:.3f} (vs a fresh PPO best "
                "response)") if config.certify != "none" else "NE gap: not estimated (--certify none)"
    _print_trained(f"{args.task} (deep) k={args.k} n={env.n} seed={args.seed}", result.seconds, result, path,
                   gap_line)
    return 0
