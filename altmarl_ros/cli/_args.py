"""What the subcommands' parsers share: argparse types, the common flags, the task and learner flags.

Building a parser must stay cheap (`altmarl --help` imports this module and nothing numerical), so the
values the parsers show or default to come from `marl/defaults.py`, which imports nothing and is where the
learners, the evaluation and the task registry take them from too.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from altmarl_ros.marl import defaults
from altmarl_ros.marl.config import parse_size
from altmarl_ros.marl.errors import AltmarlError

# --- argparse types ------------------------------------------------------------------------------

def _parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs, values parsed as YAML scalars (so 0.3, 5 and [0, 1] work)."""
    import yaml

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


def _check_output_file(path: Path | None, flag: str) -> None:
    """Before the work: the directory of an output file exists (it is created) and takes a file."""
    if path is None:
        return
    from altmarl_ros.marl.checkpoint import probe_writable

    if Path(path).is_dir():
        raise AltmarlError(f"{flag} {path} is a directory; give the path of a file to write")
    try:
        probe_writable(Path(path).absolute().parent)
    except OSError as exc:
        raise AltmarlError(f"{flag} {path} cannot be written: {exc.strerror or exc} in "
                           f"{Path(path).absolute().parent}") from exc


# --- flags several subcommands take ---------------------------------------------------------------

def common_parser() -> argparse.ArgumentParser:
    """The flags every subcommand takes (its parent parser): logging and the memory budget."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common.add_argument("--memory-budget", type=_size, metavar="SIZE",
                        help="memory this command may use, e.g. 8GiB, 500MB or a number of bytes; sets "
                        f"{defaults.MEMORY_BUDGET_ENV} for it and every process it starts, so work that would not "
                        "fit stops with an error before it starts (default: that variable if set, else 50 %% of "
                        "the memory this process may use: physical memory, capped by the cgroup limit and ulimit -v)")
    return common


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="zones", choices=defaults.TASK_NAMES, help="benchmark task (default: zones)")
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
    d = defaults
    g = p.add_argument_group("learner")
    g.add_argument("--rounds", type=POSITIVE, help=f"alternation rounds (default {d.ROUNDS})")
    g.add_argument("--m", type=POSITIVE, help=f"next-state samples per G-LEARN entry (default {d.GLEARN_M})")
    g.add_argument("--tol", type=POSITIVE_FLOAT,
                   help=f"G-LEARN stopping tolerance on |Q - Q*| (> 0, default {d.GLEARN_TOL})")
    g.add_argument("--k-ref", type=int, help="k of the full-observation reference for the global NE gap "
                   "(default: the largest k <= min(n, 60) with at most 2^20 count vectors; k-ref = n is exact full "
                   "observation)")
    g.add_argument("--starts", help="comma-separated starting pairs of the alternation, from "
                   f"{','.join(d.START_NAMES)} (default: all; see marl/starts.py)")
    g.add_argument("--gap-tol", type=NONNEGATIVE_FLOAT,
                   help="stop early when both NE gaps fall below this (>= 0; default 0: never)")
    g.add_argument("--local-method", choices=("exact", "sampled"), help=f"L-LEARN solver (default {d.LOCAL_METHOD})")
    g.add_argument("--local-temperature", type=POSITIVE_FLOAT, help="softmax temperature for the local policy "
                   "(> 0; default: greedy)")
    g.add_argument("--eval-seeds", type=POSITIVE,
                   help=f"seeds for per-round values and gaps (default {d.ROUND_EVAL_SEEDS})")
    g.add_argument("--eval-rollouts", type=POSITIVE,
                   help=f"rollouts per seed per round (default {d.ROUND_EVAL_ROLLOUTS})")
    g.add_argument("--no-certify", action="store_true", help="skip the NE-gap certificate (same as --certify none)")
    g.add_argument("--certify", choices=("final", "every_round", "none"),
                   help="when to estimate the NE gap (default final: once, for the returned pair)")
    g = p.add_argument_group("deep learner (--learner deep)")
    g.add_argument("--dqn-steps", type=int, help=f"DQN env steps per global best response (default {d.DQN_STEPS})")
    g.add_argument("--ppo-iterations", type=int,
                   help=f"PPO iterations per local best response (default {d.PPO_ITERATIONS})")
    g.add_argument("--threads", type=POSITIVE, help="torch CPU threads (default 1: small nets, bit-identical runs)")
