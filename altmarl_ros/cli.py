"""The `altmarl` command: train, eval and sweep ALTERNATING-MARL on the benchmark tasks, run the ROS 2 graph.

Every value is checked before any work starts: flags by their argparse types
(a count of seeds is >= 1, a tolerance a finite number), YAML configs section
by section against the dataclasses they fill, `--out` for an existing run and
for writability. A bad value stops with a message that says what was wrong and
what is valid (exit status 2), never a traceback or a silently changed value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from altmarl_ros.marl.alternation import AlternationConfig, alternate
from altmarl_ros.marl.certificate import global_gap
from altmarl_ros.marl.checkpoint import MEMORY_BUDGET_ENV, atomic_write_text, probe_writable
from altmarl_ros.marl.config import config_from_mapping, parse_size
from altmarl_ros.marl.errors import AltmarlError, GameValidationError
from altmarl_ros.marl.evaluation import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS, evaluate
from altmarl_ros.marl.glearn import g_learn
from altmarl_ros.marl.policies import GlobalPolicy
from altmarl_ros.marl.starts import START_NAMES, check_starts
from altmarl_ros.tasks import ALL_TASKS, ENV_TASKS, TASKS, is_tabular, make_env, make_game
from altmarl_ros.tasks.config import load_yaml

log = logging.getLogger("altmarl")

ALTERNATION_FLAGS = {"rounds": "rounds", "m": "m", "tol": "tol", "k_ref": "k_ref", "gap_tol": "gap_tol",
                     "local_method": "local_method", "local_temperature": "local_temperature",
                     "eval_seeds": "eval_seeds", "eval_rollouts": "eval_rollouts", "starts": "starts"}


def _parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs, values parsed as YAML scalars (so 0.3, 5 and [0, 1] work)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise AltmarlError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2,5, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("expected at least one k")
    return values


def _seed_list(text: str) -> list[int]:
    values = _int_list(text)
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"seeds are integers >= 0, got {text!r}")
    return values


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum (a count of seeds, episodes or steps)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _finite_float(minimum: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number above (or at, if inclusive) minimum; NaN and inf are refused."""
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        return value

    parse.__name__ = f"number {bound}"
    return parse


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


POSITIVE = _int_at_least(1)
NONNEGATIVE = _int_at_least(0)
POSITIVE_FLOAT = _finite_float(0.0, inclusive=False)
NONNEGATIVE_FLOAT = _finite_float(0.0, inclusive=True)


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="zones", choices=ALL_TASKS, help="benchmark task (default: zones)")
    p.add_argument("--config", type=Path, help="YAML file with a `task:` mapping of task keys, an `alternation:` "
                   "mapping of tabular learner keys and a `deep:` mapping of deep learner keys (see config/)")
    p.add_argument("--learner", choices=("tabular", "deep"),
                   help="tabular G-LEARN/L-LEARN, or DQN/PPO (default: tabular; warehouse is deep only)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="override one task key, e.g. --set zones=7 (repeatable)")
    p.add_argument("--n", type=int, help="number of robots (task default: 1000 for zones)")
    p.add_argument("--seed", type=NONNEGATIVE, default=0,
                   help="the one seed every random draw flows from (integer >= 0, default 0)")


def _add_alternation_args(p: argparse.ArgumentParser) -> None:
    d = AlternationConfig()
    g = p.add_argument_group("learner")
    g.add_argument("--rounds", type=POSITIVE, help=f"alternation rounds (default {d.rounds})")
    g.add_argument("--m", type=POSITIVE, help=f"next-state samples per G-LEARN entry (default {d.m})")
    g.add_argument("--tol", type=POSITIVE_FLOAT, help=f"G-LEARN stopping tolerance on |Q - Q*| (> 0, default {d.tol})")
    g.add_argument("--k-ref", type=int, help="k of the full-observation reference for the global NE gap "
                   "(default: the largest k <= min(n, 60) with at most 2^20 count vectors; k-ref = n is exact full "
                   "observation)")
    g.add_argument("--starts", help="comma-separated starting pairs of the alternation, from "
                   f"{','.join(START_NAMES)} (default: all; see marl/starts.py)")
    g.add_argument("--gap-tol", type=NONNEGATIVE_FLOAT,
                   help="stop early when both NE gaps fall below this (>= 0; default 0: never)")
    g.add_argument("--local-method", choices=("exact", "sampled"), help="L-LEARN solver (default exact)")
    g.add_argument("--local-temperature", type=POSITIVE_FLOAT, help="softmax temperature for the local policy "
                   "(> 0; default: greedy)")
    g.add_argument("--eval-seeds", type=POSITIVE, help=f"seeds for per-round values and gaps (default {d.eval_seeds})")
    g.add_argument("--eval-rollouts", type=POSITIVE,
                   help=f"rollouts per seed per round (default {d.eval_rollouts})")
    g.add_argument("--no-certify", action="store_true", help="skip the NE-gap certificate (same as --certify none)")
    g.add_argument("--certify", choices=("final", "every_round", "none"),
                   help="when to estimate the NE gap (default final: once, for the returned pair)")
    g = p.add_argument_group("deep learner (--learner deep)")
    g.add_argument("--dqn-steps", type=int, help="DQN env steps per global best response (default 2500)")
    g.add_argument("--ppo-iterations", type=int, help="PPO iterations per local best response (default 30)")
    g.add_argument("--threads", type=POSITIVE, help="torch CPU threads (default 1: small nets, bit-identical runs)")


CONFIG_SECTIONS = ("alternation", "deep", "task")
SECTION_EXAMPLES = {"alternation": "alternation: {rounds: 3}", "deep": "deep: {rounds: 2, dqn: {steps: 2500}}",
                    "task": "task: {n: 1000}"}


def _read_config(args: argparse.Namespace) -> dict[str, Any]:
    """The --config file, each section checked against what it fills (errors name the file and section)."""
    if not args.config:
        return {}
    file_config = load_yaml(args.config)
    unknown = sorted(str(key) for key in file_config if key not in CONFIG_SECTIONS)
    if unknown:
        raise AltmarlError(f"{args.config}: unknown top-level keys {unknown}; valid: {list(CONFIG_SECTIONS)}")
    for section in CONFIG_SECTIONS:
        value = file_config.get(section)
        if value is not None and not isinstance(value, dict):
            raise AltmarlError(f"{args.config}: `{section}:` must be a mapping of keys to values (e.g. "
                               f"{SECTION_EXAMPLES[section]}), got {type(value).__name__} {value!r}")
    checks = {"task": lambda values: config_from_mapping({**TASKS, **ENV_TASKS}[args.task][0], values),
              "alternation": lambda values: _check_alternation(config_from_mapping(AlternationConfig, values)),
              "deep": _check_deep_section}
    for section, check in checks.items():
        if file_config.get(section):
            try:
                check(file_config[section])
            except GameValidationError as exc:
                raise AltmarlError(f"{args.config}: in `{section}:`, {exc}") from exc
    return file_config


class _AnyK:
    """Stands in for the task's env when a `deep:` section is checked alone: every check but the k range."""

    @staticmethod
    def check_k(k: int) -> None:
        return None


def _check_deep_section(values: dict[str, Any]) -> None:
    from altmarl_ros.marl.deep.learners import DeepConfig

    config = DeepConfig.from_mapping(values)
    config.validate(_AnyK(), 1)
    _check_deep_gap_tol(config)


def _check_deep_gap_tol(config: Any) -> Any:
    if not config.gap_tol >= 0:
        raise GameValidationError(f"gap_tol must be a number >= 0 (0: never stop early), got {config.gap_tol}")
    return config


def _check_alternation(config: AlternationConfig) -> AlternationConfig:
    """Range checks for every tabular learner key (types were checked when the config was built)."""
    at_least = {"rounds": 1, "m": 1, "max_iters": 1, "local_m": 1, "mean_field_batch": 1, "mean_field_burn_in": 0,
                "mean_field_steps": 1, "eval_seeds": 1, "eval_rollouts": 1}
    for name, minimum in at_least.items():
        if getattr(config, name) < minimum:
            raise GameValidationError(f"{name} must be >= {minimum}, got {getattr(config, name)}")
    if config.k_ref is not None and config.k_ref < 1:
        raise GameValidationError(f"k_ref must be >= 1 (or null: the default reference), got {config.k_ref}")
    config.starts = check_starts(config.starts)
    if not config.reference_tol > 0:
        raise GameValidationError(f"reference_tol must be a number > 0, got {config.reference_tol}")
    if config.reference_m < 1:
        raise GameValidationError(f"reference_m must be >= 1, got {config.reference_m}")
    if not config.tol > 0:
        raise GameValidationError(f"tol must be a number > 0, got {config.tol}")
    if not config.gap_tol >= 0:
        raise GameValidationError(f"gap_tol must be a number >= 0 (0: never stop early), got {config.gap_tol}")
    if config.local_temperature is not None and not config.local_temperature > 0:
        raise GameValidationError(f"local_temperature must be > 0 (or null: greedy), got {config.local_temperature}")
    choices = {"glearn_method": ("sampled", "exact"), "local_method": ("exact", "sampled"),
               "mean_field_mode": ("episodic", "stationary")}
    for name, valid in choices.items():
        if getattr(config, name) not in valid:
            raise GameValidationError(f"{name} must be one of {list(valid)}, got {getattr(config, name)!r}")
    return config


def _task_overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    file_config = _read_config(args)
    overrides = dict(file_config.get("task") or {})
    overrides.update(_parse_assignments(args.assignments))
    if args.n is not None:
        overrides["n"] = args.n
    return overrides, dict(file_config.get("alternation") or {})


def _learner(args: argparse.Namespace) -> str:
    if args.learner is None:
        learner = "tabular" if is_tabular(args.task) else "deep"
    elif args.learner == "tabular" and not is_tabular(args.task):
        raise AltmarlError(f"task {args.task!r} has continuous states: use --learner deep")
    else:
        learner = args.learner
    ignored = "deep" if learner == "tabular" else "alternation"
    if args.config and _read_config(args).get(ignored):
        log.warning("%s: the %s learner does not read the `%s:` section (checked, then ignored)", args.config,
                    learner, ignored)
    return learner


def _deep_config(args: argparse.Namespace):
    from altmarl_ros.marl.deep.learners import DeepConfig

    values = dict(_read_config(args).get("deep") or {})
    for flag, key in (("rounds", "rounds"), ("eval_seeds", "eval_seeds"), ("eval_rollouts", "eval_rollouts"),
                      ("gap_tol", "gap_tol"), ("certify", "certify"), ("threads", "threads")):
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    if getattr(args, "no_certify", False):
        values["certify"] = "none"
    for flag, section, key in (("dqn_steps", "dqn", "steps"), ("ppo_iterations", "ppo", "iterations")):
        if getattr(args, flag, None) is not None:
            values.setdefault(section, {})[key] = getattr(args, flag)
    return _check_deep_gap_tol(DeepConfig.from_mapping(values))


def _alternation_config(args: argparse.Namespace, from_file: dict[str, Any]) -> AlternationConfig:
    valid = {f.name for f in dataclasses.fields(AlternationConfig)}
    unknown = sorted(set(from_file) - valid)
    if unknown:
        raise AltmarlError(f"unknown alternation keys {unknown}; valid keys: {sorted(valid)}")
    values = dict(from_file)
    for flag, key in ALTERNATION_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            values[key] = list(check_starts(value)) if key == "starts" else value
    certify = "none" if getattr(args, "no_certify", False) else getattr(args, "certify", None)
    if certify is not None:
        values["certify"] = certify != "none"
        values["certify_every_round"] = certify == "every_round"
    return _check_alternation(config_from_mapping(AlternationConfig, values))


# --- train ---------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from altmarl_ros.training import check_run_dir, save_result

    if _learner(args) == "deep":
        return _train_deep(args)
    overrides, alternation = _task_overrides(args)
    game = make_game(args.task, overrides)
    config = _alternation_config(args, alternation)
    config.validate(game, args.k)
    check_run_dir(args.out, force=args.force)
    log.info("training %s: n=%d, k=%d, seed=%d, %d rounds, k_ref=%d", args.task, game.n, args.k, args.seed,
             config.rounds, config.reference_k(game))
    start = time.perf_counter()
    result = alternate(game, args.k, config, seed=args.seed, progress=not args.quiet)
    path = _save(save_result, result, args, overrides)
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
    from altmarl_ros.training import check_run_dir, save_deep_result

    overrides, _ = _task_overrides(args)
    env = make_env(args.task, overrides)
    config = _deep_config(args)
    config.validate(env, args.k)
    check_run_dir(args.out, force=args.force)
    log.info("training %s with DQN + PPO: n=%d, k=%d, seed=%d, %d rounds, certificate: %s", args.task, env.n, args.k,
             args.seed, config.rounds, config.certify)
    result = deep_alternate(env, args.k, config, seed=args.seed, progress=not args.quiet)
    path = _save(save_deep_result, result, args, overrides)
    best = result.best
    gap_line = (f"NE gap estimate: global {best.global_gap:.3f} ± {best.global_gap_ci95:.3f} (vs the same DQN with "
                f"full observation), local {best.local_gap:.3f} ± {best.local_gap_ci95:.3f} (vs a fresh PPO best "
                "response)") if config.certify != "none" else "NE gap: not estimated (--certify none)"
    _print_trained(f"{args.task} (deep) k={args.k} n={env.n} seed={args.seed}", result.seconds, result, path,
                   gap_line)
    return 0


# --- eval ----------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from altmarl_ros.marl.checkpoint import load_checkpoint
    from altmarl_ros.training import load_trained

    checkpoint = load_checkpoint(args.run)
    _check_output_file(args.json, "--json")
    if checkpoint.meta.get("learner") == "deep":
        return _eval_deep(args, checkpoint)
    trained = load_trained(args.run, checkpoint=checkpoint)
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


def _check_output_file(path: Path | None, flag: str) -> None:
    """Before the work: the directory of an output file exists (it is created) and takes a file."""
    if path is None:
        return
    if Path(path).is_dir():
        raise AltmarlError(f"{flag} {path} is a directory; give the path of a file to write")
    try:
        probe_writable(Path(path).absolute().parent)
    except OSError as exc:
        raise AltmarlError(f"{flag} {path} cannot be written: {exc.strerror or exc} in "
                           f"{Path(path).absolute().parent}") from exc


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
    from altmarl_ros.marl.deep.nets import UniformLocalPolicy
    from altmarl_ros.marl.deep.rollouts import RandomGlobalPolicy, evaluate_env

    dispatcher = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, k, 0), local_policy, seeds, rollouts)
    random = evaluate_env(env, RandomGlobalPolicy(env.num_global_actions, k, 0),
                          UniformLocalPolicy(env.num_local_actions), seeds, rollouts)
    print(f"  random dispatcher, trained robots   {dispatcher.return_mean:.3f} ± {dispatcher.return_std:.3f}, "
          f"mode accuracy {dispatcher.mode_accuracy:.4f}")
    print(f"  random dispatcher, random robots    {random.return_mean:.3f} ± {random.return_std:.3f}, "
          f"mode accuracy {random.mode_accuracy:.4f}")
    return {"random_dispatcher_return": dispatcher.return_mean, "random_return": random.return_mean}


def _eval_deep(args: argparse.Namespace, checkpoint: Any) -> int:
    from altmarl_ros.marl.deep.learners import DeepConfig, DeepLearners
    from altmarl_ros.marl.deep.rollouts import evaluate_env
    from altmarl_ros.tasks import make_env
    from altmarl_ros.training import load_run, load_trained

    run = load_run(args.run, checkpoint=checkpoint)
    env = run.env if args.n is None else make_env(run.meta["task"], {**run.meta.get("task_overrides", {}),
                                                                        "n": args.n})
    seeds = list(range(args.seeds))
    report = evaluate_env(env, run.global_policy, run.local_policy, seeds, args.rollouts)
    result = _report_eval(args, run.meta, f"{run.meta['task']} (deep)", run.k, env.n, env.horizon, report)
    result["learner"] = "deep"
    if run.meta["task"] == "federated":
        result["federated_check"] = _federated_check(args, load_trained(args.run, checkpoint=checkpoint))
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


# --- sweep ---------------------------------------------------------------------------------

def cmd_sweep(args: argparse.Namespace) -> int:
    from altmarl_ros.sweep import SWEEP_CSV, check_sweep_dir, plot_sweep, run_sweep

    if _learner(args) == "deep":
        return _sweep_deep(args)
    overrides, alternation = _task_overrides(args)
    game = make_game(args.task, overrides)
    config = _alternation_config(args, alternation)
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


# --- eval-sim ------------------------------------------------------------------------------

def cmd_eval_sim(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from altmarl_ros.marl.checkpoint import load_checkpoint, resolve_path
    from altmarl_ros.sim.config import WorldConfig
    from altmarl_ros.sim.episode import ZONE_MOVES, run_episode, transition_table
    from altmarl_ros.training import load_trained

    checkpoint = load_checkpoint(args.run)
    task = checkpoint.meta.get("task")
    if task != "zones":
        raise AltmarlError(f"{resolve_path(args.run)} holds a {task!r} run; eval-sim drives robots between the zones "
                           "of the swarm world and runs zones policies only (evaluate this run with `altmarl eval`)")
    trained = load_trained(args.run, checkpoint=checkpoint)
    world_values = dict(_world_section(args.world_config))
    world_values.update(_parse_assignments(args.world_set))
    world_values.update(backend=args.backend, gui=args.gui, zones=trained.game.num_local_states)
    config = config_from_mapping(WorldConfig, world_values)
    for flag in ("png", "gif"):
        _check_output_file(getattr(args, flag), f"--{flag}")
    n = args.n
    game = trained.game.with_n(n)
    log.info("running %d episode(s) of %d decisions (%.0f s each) with n=%d on the %s backend", args.episodes,
             game.horizon, game.horizon * config.decision_period, n, config.backend)
    rng = np.random.default_rng(args.seed)
    returns, modes, transitions, wall, sim_time = [], [], 0, 0.0, 0.0
    last = None
    for episode in tqdm(range(args.episodes), desc="episodes", disable=args.quiet):
        record = 10 if (args.gif or args.png) and episode == args.episodes - 1 else 0
        last = run_episode(config, game, trained.global_policy, trained.local_policy, n, rng, record_every=record)
        returns.append(last.discounted_return)
        modes.append(last.mode_accuracy)
        transitions = transitions + last.transitions
        wall += last.wall_seconds
        sim_time += last.sim_seconds
    tabular = evaluate(game, trained.global_policy, trained.local_policy, list(range(args.seed, args.seed + 3)),
                       args.rollouts)
    empirical, model, tv = transition_table(game, transitions)
    spread = f"± {np.std(returns, ddof=1) / np.sqrt(len(returns)):.3f} (standard error over episodes)" \
        if len(returns) > 1 else "(one episode: no error estimate)"
    print(f"{trained.meta['task']} k={trained.k} in the {config.backend} world, n={n}, {args.episodes} episode(s): "
          f"{sim_time:.0f} s simulated in {wall:.1f} s (real-time factor {sim_time / max(wall, 1e-9):.1f})")
    print(f"  discounted return   {np.mean(returns):.3f} {spread}")
    print(f"  mode accuracy       {np.mean(modes):.4f}")
    print(f"  tabular evaluation  {tabular.return_mean:.3f} ± {tabular.return_std:.3f} "
          f"(same n, {len(tabular.seeds)} seeds x {args.rollouts} rollouts)")
    moves = {0: "stay", 1: "up", -1: "down"}
    print("  where robots went, by local action (displacement d = s' - s mod Z; physics vs model P_l):")
    print("    action " + " ".join(f"{'d=' + str(d):>13}" for d in range(game.num_local_states)))
    for a, move in enumerate(ZONE_MOVES):
        if model[a].sum() == 0:
            continue
        cells = " ".join(f"{empirical[a, d]:.3f} / {model[a, d]:.3f}" for d in range(game.num_local_states))
        print(f"    {moves[int(move)]:>6} {cells}")
    print(f"  total-variation distance, physics vs P_l (visit-weighted): {tv:.4f}")
    if args.png and last is not None and last.frames:
        from altmarl_ros.sim.render import render_png

        print(f"  picture: {render_png(config, last.frames[-1], args.png)}")
    if args.gif and last is not None and last.frames:
        from altmarl_ros.sim.render import render_gif

        print(f"  animation: {render_gif(config, last.frames, args.gif)}")
    return 0


def _world_section(path: Path | None) -> dict[str, Any]:
    """The `world:` mapping of a --world-config file (its only section), checked for shape."""
    if path is None:
        return {}
    data = load_yaml(path)
    unknown = sorted(str(key) for key in data if key != "world")
    if unknown:
        raise AltmarlError(f"{path}: unknown top-level keys {unknown}; valid: ['world']")
    world = data.get("world")
    if world is not None and not isinstance(world, dict):
        raise AltmarlError(f"{path}: `world:` must be a mapping of world keys to values (e.g. world: "
                           f"{{decision_period: 10}}), got {type(world).__name__} {world!r}")
    return world or {}


# --- sim ---------------------------------------------------------------------------------

def cmd_sim(args: argparse.Namespace) -> int:
    from altmarl_ros.launch_plan import LaunchConfig
    from altmarl_ros.system import run_system

    if args.checkpoint_out:
        where = args.checkpoint_out.parent if args.checkpoint_out.suffix == ".npz" else args.checkpoint_out
        try:
            probe_writable(where)
        except OSError as exc:
            raise AltmarlError(f"--checkpoint-out {args.checkpoint_out} is not writable: {exc.strerror or exc} "
                               f"in {where}") from exc
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise AltmarlError("altmarl sim needs rclpy: source a ROS 2 install (Humble, Jazzy, Kilted) or "
                           "pip install '.[ros]' on a machine without ROS 2") from exc
    config = LaunchConfig(n=args.n, k=args.k, policy=str(args.policy), backend=args.backend,
                          robots_per_process=args.robots_per_process, link=args.link, learn=args.learn,
                          record=str(args.record) if args.record else "", world_config=str(args.world_config or ""),
                          seed=args.seed, speedup=args.speedup, decision_steps=args.steps,
                          checkpoint_out=str(args.checkpoint_out or ""),
                          params_file=str(args.params_file or ""), security=str(args.security or ""))
    run = run_system(config, args.log_dir, timeout=args.timeout, progress=not args.quiet)
    s = run.summary
    print(f"ran {s.steps} decision steps in {run.wall_seconds:.1f} s wall (n={args.n}, k={args.k}, "
          f"{args.backend}, speedup {args.speedup})")
    print(f"  discounted return        {s.discounted_return:.3f}")
    print(f"  mode accuracy            {s.mode_accuracy:.3f}")
    print(f"  samples per step         {s.samples_per_step_mean:.2f} (max {s.samples_per_step_max}, k={args.k})")
    print(f"  decisions honoured       {s.decisions_honoured:.3f} (robots in their chosen zone at the next step)")
    print(f"  comm statistics          {run.log.last_stats}")
    if run.died:
        print(f"  processes that died      {run.died} (logs in {args.log_dir})")
    if args.record:
        print(f"  recording                {args.record}")
    return 0


# --- render (self-contained: its parser and handler only) -----------------------------------

def _add_render_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("render", parents=[common], help="draw a recording's RViz markers to a PNG",
                       description="Replay the /altmarl/markers stream of an MCAP recording as RViz's MarkerArray "
                       "display does and draw it top-down in the world frame (zones, robots, leader, sampled "
                       "robots, status text), as the TopDownOrtho view of config/altmarl.rviz shows it.")
    p.add_argument("recording", type=Path, help="the --record directory of altmarl sim, or its run.mcap")
    p.add_argument("--png", type=Path, required=True, help="the PNG to write")
    p.add_argument("--time", type=float, help="markers' clock in seconds (simulated seconds for altmarl sim); "
                   "default: the end, the latest marker of each (ns, id)")
    p.add_argument("--size", type=int, default=800, help="width and height of the PNG in pixels (default 800)")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    from altmarl_ros.viz_render import render_markers_png

    if args.size < 100:
        raise AltmarlError(f"--size must be at least 100 pixels, got {args.size}")
    picture = render_markers_png(args.recording, args.png, time=args.time, size=(args.size, args.size))
    step = "" if picture.step is None else f", decision step {picture.step}"
    drawn = ", ".join(f"{ns} {count}" for ns, count in sorted(picture.namespaces.items()))
    print(f"wrote {picture.path}: markers at t = {picture.time:.2f} s{step} ({drawn})")
    return 0


# --- keystore (self-contained: the plan's enclaves come from altmarl_ros.security) ----------------

def _add_keystore_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from altmarl_ros import security

    p = sub.add_parser("keystore", parents=[common], help="create the SROS2 keystore and enclaves a launch needs",
                       description="Create (or complete) an SROS2 keystore with one enclave per process of the "
                       "launch plan these arguments give, for security:=KEYSTORE (ros2 launch) or altmarl sim "
                       "--security KEYSTORE. Needs `ros2 security` (sros2, part of any ROS 2 install).")
    security.add_arguments(p)
    p.set_defaults(func=security.run_from_arguments)


# --- entry point ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="altmarl", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("--memory-budget", type=_size, metavar="SIZE",
                        help="memory this command may use, e.g. 8GiB, 500MB or a number of bytes; sets "
                        f"{MEMORY_BUDGET_ENV} for it and every process it starts, so work that would not fit stops "
                        "with an error before it starts (default: that variable if set, else 50 %% of the memory "
                        "this process may use: physical memory, capped by the cgroup limit and ulimit -v)")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("eval", parents=[common], help="evaluate a trained run by the task's protocol",
                       description="Discounted return and mode-tracking accuracy over seeds x rollouts, "
                       "and the NE gap (recorded at training, or re-measured with --gap).")
    p.add_argument("run", type=Path, help="run directory or checkpoint.npz")
    p.add_argument("--seeds", type=POSITIVE, default=len(DEFAULT_EVAL_SEEDS),
                   help="evaluation seeds 0..S-1 (S >= 1, default 15)")
    p.add_argument("--rollouts", type=POSITIVE, default=DEFAULT_ROLLOUTS, help="rollouts per seed (default 50)")
    p.add_argument("--n", type=int, help="evaluate with another number of robots (default: the trained n)")
    p.add_argument("--gap", action="store_true", help="re-measure the global NE gap with the full protocol")
    p.add_argument("--k-ref", type=POSITIVE, default=60, help="reference k for --gap (default 60, capped at n)")
    p.add_argument("--federated-seeds", type=POSITIVE, default=10,
                   help="federated runs: seeds of the real federated optimisation check (default 10)")
    p.add_argument("--baselines", action="store_true",
                   help="also evaluate a random dispatcher with the trained robots, and with random robots")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("eval-sim", parents=[common], help="run a trained run's policies in the swarm world",
                       description="Drive robots in the PyBullet or kinematic world with the trained policies; report "
                       "return, mode accuracy, and the transition frequencies measured in physics next to P_l.")
    p.add_argument("run", type=Path, help="run directory or checkpoint.npz")
    p.add_argument("--backend", choices=("kinematic", "pybullet"), default="kinematic",
                   help="pybullet: wheels and contact; kinematic: unicycle integration (default)")
    p.add_argument("--n", type=int, default=50, help="number of robots (default 50)")
    p.add_argument("--episodes", type=POSITIVE, default=3, help="episodes of the task's horizon (>= 1, default 3)")
    p.add_argument("--seed", type=NONNEGATIVE, default=0, help="seed of every draw in the world (default 0)")
    p.add_argument("--rollouts", type=POSITIVE, default=50, help="rollouts per seed of the tabular comparison")
    p.add_argument("--world-config", type=Path, help="YAML with a `world:` mapping (see config/world.yaml)")
    p.add_argument("--set", dest="world_set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one world key, e.g. --set decision_period=10 (repeatable)")
    p.add_argument("--gui", action="store_true", help="open the PyBullet window (pybullet backend)")
    p.add_argument("--png", type=Path, help="write a top-down picture of the last step here")
    p.add_argument("--gif", type=Path, help="write an animation of the last episode here")
    p.set_defaults(func=cmd_eval_sim)

    p = sub.add_parser("sim", parents=[common], help="run the ROS 2 node graph without ros2 launch",
                       description="Start the sim, fleet and coordinator nodes (and the recorder) as processes on "
                       "real rclpy, supervise them (Ctrl-C stops everything), and print a summary.")
    p.add_argument("--policy", type=Path, required=True, help="run directory or checkpoint.npz from altmarl train")
    p.add_argument("--n", type=POSITIVE, default=20, help="number of robots (default 20)")
    p.add_argument("--k", type=POSITIVE, default=4, help="robots sampled per step; must match the policy (default 4)")
    p.add_argument("--backend", default="kinematic", help="kinematic (default) or pybullet")
    p.add_argument("--robots-per-process", type=POSITIVE, default=25,
                   help="robot nodes per fleet process (default 25)")
    p.add_argument("--link", default="per_robot",
                   help="per_robot (default: a node, odom and cmd_vel per robot) or batched (one pose array and one "
                        "command array per fleet process: hundreds of simulated robots)")
    p.add_argument("--learn", action="store_true", help="online G-LEARN in the coordinator")
    p.add_argument("--checkpoint-out", type=Path, help="where the learning coordinator saves (and resumes) Q")
    p.add_argument("--record", type=Path, help="write the run's topics to MCAP in this directory")
    p.add_argument("--world-config", type=Path, help="YAML with a `world:` mapping")
    p.add_argument("--params-file", type=Path, help="ROS 2 parameters file for every node (config/altmarl.yaml)")
    p.add_argument("--speedup", type=POSITIVE_FLOAT, default=1.0,
                   help="simulated seconds per wall second (> 0, default 1)")
    p.add_argument("--steps", type=NONNEGATIVE, default=30,
                   help="decision steps before stopping (>= 0; 0: until Ctrl-C; default 30)")
    p.add_argument("--timeout", type=POSITIVE_FLOAT, default=3600.0,
                   help="wall-clock limit in seconds (> 0, default 3600)")
    p.add_argument("--seed", type=NONNEGATIVE, default=0, help="seed of the world and every node")
    p.add_argument("--log-dir", type=Path, default=Path("runs/sim-logs"), help="one log file per process")
    p.add_argument("--security", type=Path, help="SROS2 keystore (from altmarl keystore): every node and the "
                   "monitor under DDS Security, ROS_SECURITY_STRATEGY=Enforce")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("sweep", parents=[common], help="train and evaluate at several k; CSV and plots",
                       description="One training run per k; writes sweep.csv, reward/NE-gap/mode-accuracy/"
                       "G-LEARN-time plots, and each k's checkpoint under OUT/k<K>/.")
    _add_task_args(p)
    p.add_argument("--k", type=_int_list, required=True, help="comma-separated k values, e.g. 1,2,3,5,10,20,35,50")
    p.add_argument("--out", type=Path, required=True, help="output directory (a new or empty one, or an existing "
                   "sweep with --force)")
    p.add_argument("--force", action="store_true", help="overwrite the sweep already in --out; each k's run is "
                   "replaced only once its new run is complete")
    p.add_argument("--final-seeds", type=POSITIVE, default=len(DEFAULT_EVAL_SEEDS), help="protocol seeds (default 15)")
    p.add_argument("--final-rollouts", type=POSITIVE, default=DEFAULT_ROLLOUTS, help="protocol rollouts (default 50)")
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
    _add_render_parser(sub, common)
    _add_keystore_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "memory_budget", None) is not None:
        os.environ[MEMORY_BUDGET_ENV] = str(args.memory_budget)  # before any work, inherited by child processes
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except AltmarlError as exc:
        print(f"altmarl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"altmarl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went into e.g. `head`, which has closed it: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
