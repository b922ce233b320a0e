"""`altmarl --help`, `altmarl <cmd> --help` and a bad flag import nothing numerical, so they answer at once.

Deterministic checks of sys.modules in a fresh interpreter, not timings: the parser is built from
altmarl_ros.cli alone; scipy, torch, numba, rclpy, matplotlib and pybullet are imported by the handlers.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("scipy", "torch", "numba", "rclpy", "matplotlib", "pybullet")
SUBCOMMANDS = ("train", "eval", "eval-sim", "sim", "sweep", "render", "keystore")
LOADED = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_building_the_parser_imports_nothing_heavy():
    proc = _python("import sys, altmarl_ros.cli; from altmarl_ros.cli import build_parser; build_parser(); "
                   f"print({LOADED})")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], *([cmd, "--help"] for cmd in SUBCOMMANDS),
                                  ["train", "--k", "x", "--out", "run"]], ids=" ".join)
def test_help_and_flag_errors_import_nothing_heavy(argv):
    code = ("import sys\nfrom altmarl_ros.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            f"    print('exit', exc.code, {LOADED}, file=sys.stderr)\n")
    proc = _python(code, *argv)
    status = 2 if argv[-1] != "--help" else 0
    assert proc.stderr.strip().splitlines()[-1] == f"exit {status} []", proc.stderr


def test_python_m_help_lists_every_subcommand():
    proc = subprocess.run([sys.executable, "-m", "altmarl_ros.cli", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "{" + ",".join(SUBCOMMANDS) + "}" in proc.stdout
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert set(SUBCOMMANDS) <= listed


def test_help_shows_the_defaults_the_learners_use():
    """The parsers read marl/defaults.py; the learners' own defaults are what --help says."""
    from altmarl_ros.cli import build_parser
    from altmarl_ros.marl.alternation import AlternationConfig
    from altmarl_ros.marl.deep.dqn import DQNConfig
    from altmarl_ros.marl.deep.ppo import PPOConfig
    from altmarl_ros.marl.starts import START_NAMES
    from altmarl_ros.tasks import ALL_TASKS

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    helps = {action.dest: action.help or "" for action in train._actions}
    config = AlternationConfig()
    for dest, value in (("rounds", config.rounds), ("m", config.m), ("tol", config.tol),
                        ("local_method", config.local_method), ("eval_seeds", config.eval_seeds),
                        ("eval_rollouts", config.eval_rollouts), ("dqn_steps", DQNConfig().steps),
                        ("ppo_iterations", PPOConfig().iterations)):
        assert f"default {value})" in helps[dest], (dest, helps[dest])
    assert ",".join(START_NAMES) in helps["starts"]
    task = next(action for action in train._actions if action.dest == "task")
    assert sorted(task.choices) == ALL_TASKS


def test_the_names_of_the_one_module_cli_are_still_there():
    """Imported on first access from the modules they come from (and replaceable, as the tests do)."""
    code = """
import altmarl_ros.cli as cli
from altmarl_ros.marl import alternation, checkpoint
from altmarl_ros import tasks
assert cli.alternate is alternation.alternate and cli.AlternationConfig is alternation.AlternationConfig
assert cli.ALL_TASKS is tasks.ALL_TASKS and cli.make_game is tasks.make_game
assert cli.MEMORY_BUDGET_ENV is checkpoint.MEMORY_BUDGET_ENV
assert {"alternate", "global_gap", "g_learn", "load_yaml"} <= set(dir(cli))
for name in cli._LAZY:
    getattr(cli, name)
try:
    cli.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("no AttributeError")
from altmarl_ros.cli import _jobs_that_fit, build_parser, main, markdown_table, monotonicity_line, tabular_gap_line
print("ok")
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
