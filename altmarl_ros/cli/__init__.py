"""The `altmarl` command: train, eval and sweep ALTERNATING-MARL on the benchmark tasks, run the ROS 2 graph.

Every value is checked before any work starts: flags by their argparse types
(a count of seeds is >= 1, a tolerance a finite number), YAML configs section
by section against the dataclasses they fill, `--out` for an existing run and
for writability. A bad value stops with a message that says what was wrong and
what is valid (exit status 2), never a traceback or a silently changed value.
"""

# (The docstring above is also `altmarl --help`'s description.) One module per subcommand, each with its
# add_parser and cmd_* handler: train, eval, eval_sim, sim, sweep, render, keystore; _args holds the argparse
# types and the flags several share, _config the --config/--set/flag handling of train and sweep. Building the
# parser imports nothing numerical: scipy, numba, torch, rclpy, matplotlib and pybullet are imported by the
# handlers that use them, so `altmarl --help` and a bad flag answer at once (test/test_cli_imports.py).

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from altmarl_ros.cli import eval as _eval
from altmarl_ros.cli import eval_sim as _eval_sim
from altmarl_ros.cli import keystore as _keystore
from altmarl_ros.cli import render as _render
from altmarl_ros.cli import sim as _sim
from altmarl_ros.cli import sweep as _sweep
from altmarl_ros.cli import train as _train
from altmarl_ros.cli._args import (  # noqa: F401  (the names the one-module cli had, for its importers)
    NONNEGATIVE,
    NONNEGATIVE_FLOAT,
    POSITIVE,
    POSITIVE_FLOAT,
    _add_alternation_args,
    _add_task_args,
    _check_output_file,
    _finite_float,
    _int_at_least,
    _int_list,
    _parse_assignments,
    _seed_list,
    _size,
    common_parser,
)
from altmarl_ros.cli._config import (  # noqa: F401
    ALTERNATION_FLAGS,
    CONFIG_SECTIONS,
    SECTION_EXAMPLES,
    _alternation_config,
    _AnyK,
    _check_alternation,
    _check_deep_gap_tol,
    _check_deep_section,
    _deep_config,
    _learner,
    _read_config,
    _task_overrides,
)
from altmarl_ros.cli.eval import _eval_deep, _federated_check, _print_baselines, _report_eval, cmd_eval  # noqa: F401
from altmarl_ros.cli.eval_sim import _world_section, cmd_eval_sim  # noqa: F401
from altmarl_ros.cli.render import cmd_render
from altmarl_ros.cli.sim import cmd_sim
from altmarl_ros.cli.sweep import (  # noqa: F401
    _jobs_that_fit,
    _return_ci95,
    _sweep_deep,
    _sweep_jobs,
    _sweep_save_error,
    cmd_sweep,
    markdown_table,
    monotonicity_line,
)
from altmarl_ros.cli.train import _print_trained, _save, _shown, _train_deep, cmd_train, tabular_gap_line  # noqa: F401
from altmarl_ros.marl.config import config_from_mapping, parse_size  # noqa: F401
from altmarl_ros.marl.defaults import MEMORY_BUDGET_ENV as _MEMORY_BUDGET_ENV
from altmarl_ros.marl.errors import AltmarlError, GameValidationError  # noqa: F401

__all__ = ["ALTERNATION_FLAGS", "CONFIG_SECTIONS", "NONNEGATIVE", "NONNEGATIVE_FLOAT", "POSITIVE", "POSITIVE_FLOAT",
           "SECTION_EXAMPLES", "build_parser", "cmd_eval", "cmd_eval_sim", "cmd_render", "cmd_sim", "cmd_sweep",
           "cmd_train", "common_parser", "main", "markdown_table", "monotonicity_line", "tabular_gap_line"]

log = logging.getLogger("altmarl")

_add_render_parser = _render.add_parser
_add_keystore_parser = _keystore.add_parser

# The learner and task names the one-module cli imported at its top, for code that reads (or, like the tests,
# replaces) them here: imported on first access (PEP 562), so that `import altmarl_ros.cli` stays cheap.
_LAZY = {
    "AlternationConfig": "altmarl_ros.marl.alternation", "alternate": "altmarl_ros.marl.alternation",
    "global_gap": "altmarl_ros.marl.certificate",
    "MEMORY_BUDGET_ENV": "altmarl_ros.marl.checkpoint", "atomic_write_text": "altmarl_ros.marl.checkpoint",
    "probe_writable": "altmarl_ros.marl.checkpoint",
    "DEFAULT_EVAL_SEEDS": "altmarl_ros.marl.evaluation", "DEFAULT_ROLLOUTS": "altmarl_ros.marl.evaluation",
    "evaluate": "altmarl_ros.marl.evaluation",
    "g_learn": "altmarl_ros.marl.glearn",
    "GlobalPolicy": "altmarl_ros.marl.policies",
    "START_NAMES": "altmarl_ros.marl.starts", "check_starts": "altmarl_ros.marl.starts",
    "ALL_TASKS": "altmarl_ros.tasks", "ENV_TASKS": "altmarl_ros.tasks", "TASKS": "altmarl_ros.tasks",
    "is_tabular": "altmarl_ros.tasks", "make_env": "altmarl_ros.tasks", "make_game": "altmarl_ros.tasks",
    "load_yaml": "altmarl_ros.tasks.config",
}


def __getattr__(name: str) -> Any:
    """A name of _LAZY, imported from its module now and kept here (a replaced one stays replaced)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def build_parser() -> argparse.ArgumentParser:
    """The `altmarl` parser with every subcommand, in the order `altmarl --help` lists them."""
    parser = argparse.ArgumentParser(prog="altmarl", description=__doc__)
    common = common_parser()
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (_train, _eval, _eval_sim, _sim, _sweep, _render, _keystore):
        command.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; an AltmarlError is its message and exit status 2, Ctrl-C status 130."""
    args = build_parser().parse_args(argv)
    if getattr(args, "memory_budget", None) is not None:
        os.environ[_MEMORY_BUDGET_ENV] = str(args.memory_budget)  # before any work, inherited by child processes
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
