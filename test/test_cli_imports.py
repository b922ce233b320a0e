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


def test_the_parsers_copies_match_their_sources():
    """The values the parsers show are written out in cli/_args.py (importing their modules is slow)."""
    from altmarl_ros.cli import _args
    from altmarl_ros.marl.alternation import AlternationConfig
    from altmarl_ros.marl.checkpoint import MEMORY_BUDGET_ENV
    from altmarl_ros.marl.evaluation import DEFAULT_EVAL_SEEDS, DEFAULT_ROLLOUTS
    from altmarl_ros.marl.starts import START_NAMES
    from altmarl_ros.tasks import ALL_TASKS

    assert _args.TASK_NAMES == ALL_TASKS
    assert _args.START_NAMES == START_NAMES
    assert _args.MEMORY_BUDGET_ENV == MEMORY_BUDGET_ENV
    assert _args.DEFAULT_EVAL_SEEDS == DEFAULT_EVAL_SEEDS and _args.DEFAULT_ROLLOUTS == DEFAULT_ROLLOUTS
    defaults = AlternationConfig()
    assert {key: getattr(defaults, key) for key in vars(_args.ALTERNATION_DEFAULTS)} == vars(_args.ALTERNATION_DEFAULTS)


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
