"""The learner and task configuration of `train` and `sweep`: the --config file, --set and the flags, checked.

The learner and task modules are imported inside the functions, when a command runs, not when the parser is
built (see altmarl_ros/cli/__init__.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from altmarl_ros.cli._args import _parse_assignments
from altmarl_ros.marl.config import config_from_mapping
from altmarl_ros.marl.errors import AltmarlError, GameValidationError

if TYPE_CHECKING:
    from altmarl_ros.marl.alternation import AlternationConfig

log = logging.getLogger("altmarl")

# the learner flags that set the AlternationConfig field of the same name
ALTERNATION_FLAGS = ("rounds", "m", "tol", "k_ref", "gap_tol", "local_method", "local_temperature", "eval_seeds",
                     "eval_rollouts", "starts")

CONFIG_SECTIONS = ("alternation", "deep", "task")
SECTION_EXAMPLES = {"alternation": "alternation: {rounds: 3}", "deep": "deep: {rounds: 2, dqn: {steps: 2500}}",
                    "task": "task: {n: 1000}"}


def _read_config(args: argparse.Namespace) -> dict[str, Any]:
    """The --config file, each section checked against what it fills (errors name the file and section)."""
    if not args.config:
        return {}
    from altmarl_ros.marl.alternation import AlternationConfig
    from altmarl_ros.tasks import ENV_TASKS, TASKS
    from altmarl_ros.tasks.config import load_yaml

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
    from altmarl_ros.marl.starts import check_starts

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
    from altmarl_ros.tasks import is_tabular

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
    from altmarl_ros.marl.alternation import AlternationConfig
    from altmarl_ros.marl.starts import check_starts

    valid = {f.name for f in dataclasses.fields(AlternationConfig)}
    unknown = sorted(set(from_file) - valid)
    if unknown:
        raise AltmarlError(f"unknown alternation keys {unknown}; valid keys: {sorted(valid)}")
    values = dict(from_file)
    for flag in ALTERNATION_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            values[flag] = list(check_starts(value)) if flag == "starts" else value
    certify = "none" if getattr(args, "no_certify", False) else getattr(args, "certify", None)
    if certify is not None:
        values["certify"] = certify != "none"
        values["certify_every_round"] = certify == "every_round"
    return _check_alternation(config_from_mapping(AlternationConfig, values))


def tabular_setup(args: argparse.Namespace) -> tuple[dict[str, Any], Any, AlternationConfig]:
    """What train and sweep build first on a tabular task: the task overrides, the game, the checked
    AlternationConfig (from --config, --set and the learner flags)."""
    from altmarl_ros.tasks import make_game

    overrides, alternation = _task_overrides(args)
    return overrides, make_game(args.task, overrides), _alternation_config(args, alternation)
