"""Fault injection: a restart, a hostile peer or a bad file must not take the swarm down (issue 9).

Why: each guarantee of README's "Untrusted messages", "Sessions", "A robot
stops by itself", "No silent loss" and the checkpoint verification is only as
good as a case that shows it. This script injects the faults and prints one
Markdown row per case:

* **case** — a short name (`--only PATTERN` runs those whose name matches);
* **outcome** — `refused, exit 2`, `ran on`, `recovered`, `crashed: <exception>`,
  `timeout (N s)`, `killed (SIG...)`, or what a graph did (`ran on, degraded`);
* **data lost** — for file cases: did the existing run / checkpoint /
  recording survive unchanged (SHA-256 of every file before and after; after a
  SIGKILL, the run directory loaded with the package's loader and its three
  files checked to be one run, the old one byte-identical or the new one);
  `-` where not applicable;
* **error clear** — `yes` when the command exited with code 2 and printed
  exactly one `error:` line (argparse's `usage:` lines aside) that names the
  problem (for file cases, the file), with no Python traceback; for graph
  cases, when the logs written during the case (every node's, and altmarl
  sim's own) say what was dropped and none holds a traceback; `no: <why>`
  otherwise; `-` where the command is meant to succeed;
* **evidence** — the error line, or what the graph was seen to do.

Every case is a subprocess in its own session with a wall-clock timeout and an
address-space cap (`RLIMIT_AS`, `--memory-limit`, default 3 GiB, inherited by
every process it starts), so no case can take the machine down; a timed-out
case is killed with all its descendants. Command and file cases run `--jobs`
at a time; loss and graph cases one at a time.

Graph cases share small graphs: `altmarl sim --policy <tiny run> --n 10 --k 3
--robots-per-process 4 --speedup 4 --steps 0` (2 s decisions) on a private
`ROS_DOMAIN_ID` with `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`, and a hostile
peer (`benchmarks/_faults.py peer`) on the same domain that waits for step 3,
runs one attack per window of 4 decision steps, records the coordinator's
statistics and every robot's decisions, and snapshots the log sizes at each
attack so each row judges only its own window; the graph is then stopped with
Ctrl-C (SIGINT), as a user would. A graph that dies hands the remaining
attacks to a fresh one. The coordinator restart uses `altmarl_ros.bringup.system.
run_system` directly (`benchmarks/_faults.py restart`).

Run:  python3 benchmarks/fault_injection.py [--quick] [--only PATTERN] [--json FILE] [--work-dir DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _faults as fx  # noqa: E402 - the helper module next to this script
from _harness import machine_info, use_repo_package, write_json  # noqa: E402

use_repo_package()

TINY = ["--n", "200", "--rounds", "1", "--no-certify", "-q"]  # a training that takes about a second
EVAL_QUICK = ["--seeds", "2", "--rollouts", "5", "-q"]
GRAPH_N, GRAPH_K = 10, 3
_FIXTURES = threading.Lock()  # command cases run in threads: one of them makes each fixture


@dataclass
class Row:
    case: str
    kind: str
    outcome: str
    data_lost: str
    error_clear: str
    evidence: str = ""
    command: str = ""
    wall_s: float = 0.0


@dataclass
class Ctx:
    """Shared settings and fixtures of one invocation."""

    work: Path
    timeout: float
    memory: int
    seed: int
    domain: int
    env: dict[str, str] = field(default_factory=dict)
    fixtures: dict[str, Path] = field(default_factory=dict)
    save_steps: list[str] | None = None  # the fault points a save onto an existing run passes, in order
    force_wall: float = 0.0  # seconds a `train --force` onto a run takes here
    save_at: float = 0.0  # seconds into it at which the save begins

    def path(self, *parts: str) -> Path:
        target = self.work.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def run(self, argv: Sequence[str], timeout: float | None = None, cwd: Path | None = None) -> fx.Proc:
        return fx.run_bounded(argv, timeout or self.timeout, self.memory, env=self.env, cwd=cwd)


@dataclass
class Case:
    name: str
    kind: str  # input | file | loss | graph
    run: Callable[[Ctx], Row] | None = None
    attack: str = ""  # graph cases


# --- fixtures ------------------------------------------------------------------------------

def fixture(ctx: Ctx, name: str) -> Path:
    """The tiny runs and files the cases start from, made once per invocation."""
    with _FIXTURES:
        if name not in ctx.fixtures:
            ctx.fixtures[name] = make_fixture(ctx, name)
        return ctx.fixtures[name]


def make_fixture(ctx: Ctx, name: str) -> Path:
    if name in ("run", "fed"):
        out = ctx.work / "fixtures" / name
        task = "zones" if name == "run" else "federated"
        proc = ctx.run(fx.altmarl("train", "--task", task, "--k", str(GRAPH_K), "--seed", "0", "--out", str(out),
                                 "--force", *TINY))  # same seed, same bits: a reused --work-dir gets the same run
        if proc.returncode != 0:
            raise RuntimeError(f"could not train the {name} fixture: {proc.stderr[-2000:]}")
    elif name == "world":
        out = ctx.path("fixtures", "world.yaml")
        out.write_text("world:\n  decision_period: 2.0\n")
    else:
        raise KeyError(name)
    return out


def checkpoint(ctx: Ctx) -> Path:
    return fixture(ctx, "run") / "checkpoint.npz"


# --- bad inputs ----------------------------------------------------------------------------

def cli_case(name: str, args: Callable[[Ctx], list[str]], names: Sequence[str], kind: str = "input",
             keep: Callable[[Ctx], list[Path]] | None = None, timeout: float | None = None) -> Case:
    """A command that must be refused (exit 2, one clear error line naming `names`); `keep` must not change."""

    def run(ctx: Ctx) -> Row:
        argv = fx.altmarl(*args(ctx))
        kept = keep(ctx) if keep else []
        before = fx.digests(*kept)
        proc = ctx.run(argv, timeout)
        lost = fx.compare(before, fx.digests(*kept)) if kept else "-"
        return Row(name, kind, fx.outcome(proc), lost, fx.error_clear(proc, names), fx.first_error(proc),
                   fx.shown(argv), proc.wall)

    return Case(name, kind, run)


def config_file(ctx: Ctx, name: str, text: str) -> str:
    path = ctx.path("configs", name)
    path.write_text(text)
    return str(path)


def out(ctx: Ctx, case: str) -> str:
    return str(ctx.work / "out" / case)


def train(*args: str) -> Callable[[Ctx], list[str]]:
    """`altmarl train --task zones <args> --out <work>/out/<one directory per argument list>`."""

    def build(ctx: Ctx) -> list[str]:
        return ["train", "--task", "zones", *args, "--out", out(ctx, re.sub(r"[^\w.=-]+", "_", "-".join(args)))]

    return build


def sim_args(ctx: Ctx, *args: str) -> list[str]:
    return ["sim", "--policy", str(fixture(ctx, "run")), "--n", str(GRAPH_N), "--k", str(GRAPH_K),
            "--log-dir", str(ctx.path("logs", "input-sim")), "-q", *args]


def input_cases() -> list[Case]:
    k_name, n_name = r"\bk\b|--k", r"\bn\b|--n"
    run = lambda ctx: str(fixture(ctx, "run"))  # noqa: E731 - a short fixture lookup
    return [
        cli_case("train --k 0", train("--k", "0", *TINY), [k_name]),
        cli_case("train --k 2000 --n 1000", train("--k", "2000", "--n", "1000", "--rounds", "1", "--no-certify",
                                                  "-q"), [k_name, r"1000|\bn\b"]),
        cli_case("train --k 200 (memory)", train("--k", "200", "--rounds", "1", "--no-certify", "-q"),
                 [r"memory|bytes|GiB|budget"]),
        cli_case("train --k 200 --memory-budget 1GiB", train("--k", "200", "--memory-budget", "1GiB", "--rounds",
                                                             "1", "--no-certify", "-q"), [r"memory|bytes|GiB|budget"]),
        cli_case("train --set zones=1000", train("--k", "5", "--set", "zones=1000", "--rounds", "1", "--no-certify",
                                                 "-q"), [r"memory|bytes|GiB|budget|zones"]),
        cli_case("train --set zones=7 (certificate)", train("--k", "5", "--set", "zones=7", "--rounds", "1", "-q"),
                 [r"k.ref|certif|memory|bytes|GiB|budget"]),
        cli_case("config task: 5", lambda ctx: [*train("--k", "3", *TINY)(ctx), "--config",
                                                config_file(ctx, "task-int.yaml", "task: 5\n")],
                 [r"task", r"task-int\.yaml|mapping"]),
        cli_case("config rounds: \"3\"", lambda ctx: [*train("--k", "3", "--n", "200", "--no-certify", "-q")(ctx),
                                                      "--config", config_file(ctx, "rounds-str.yaml",
                                                                              'alternation:\n  rounds: "3"\n')],
                 [r"rounds"]),
        cli_case("config certify: \"no\"", lambda ctx: [*train("--k", "3", "--n", "200", "--rounds", "1", "-q")(ctx),
                                                        "--config", config_file(ctx, "certify-str.yaml",
                                                                                'alternation:\n  certify: "no"\n')],
                 [r"certify"]),
        cli_case("config probability 1.5", lambda ctx: [
            "train", "--task", "federated", "--k", "3", *TINY, "--out", out(ctx, "prob"), "--config",
            config_file(ctx, "prob.yaml", "task:\n  step_follow_prob: 1.5\n")], [r"step_follow_prob|probabilit"]),
        cli_case("--set step_follow_prob=1.5", lambda ctx: [
            "train", "--task", "federated", "--k", "3", *TINY, "--out", out(ctx, "prob-set"), "--set",
            "step_follow_prob=1.5"], [r"step_follow_prob|probabilit"]),
        cli_case("config not YAML", lambda ctx: [*train("--k", "3", *TINY)(ctx), "--config",
                                                 config_file(ctx, "broken.yaml", "task: [1, 2\n")], [r"broken\.yaml"]),
        cli_case("config missing", lambda ctx: [*train("--k", "3", *TINY)(ctx), "--config",
                                                str(ctx.work / "no-such.yaml")], [r"no-such\.yaml"]),
        cli_case("train --gap-tol nan", train("--k", "3", "--gap-tol", "nan", *TINY), [r"gap.tol"]),
        cli_case("train --tol -1", train("--k", "3", "--tol", "-1", *TINY), [r"\btol\b"]),
        cli_case("train --n -5", train("--k", "3", "--n", "-5", "--rounds", "1", "--no-certify", "-q"), [n_name]),
        cli_case("train --k 1.5", train("--k", "1.5", *TINY), [k_name]),
        cli_case("--set unknown key", train("--k", "3", "--set", "bogus_key=1", *TINY), [r"bogus_key"]),
        cli_case("--set zones=abc", train("--k", "3", "--set", "zones=abc", *TINY), [r"zones"]),
        cli_case("--memory-budget lots", train("--k", "3", "--memory-budget", "lots", *TINY), [r"memory.budget|size"]),
        cli_case("eval --seeds 0", lambda ctx: ["eval", run(ctx), "--seeds", "0", "-q"], [r"seeds"]),
        cli_case("eval --rollouts 0", lambda ctx: ["eval", run(ctx), "--rollouts", "0", "-q"], [r"rollouts"]),
        cli_case("eval --n 0", lambda ctx: ["eval", run(ctx), "--n", "0", "-q"], [n_name]),
        cli_case("eval-sim --episodes 0", lambda ctx: ["eval-sim", run(ctx), "--n", "10", "--episodes", "0", "-q"],
                 [r"episodes"]),
        cli_case("eval-sim federated run", lambda ctx: ["eval-sim", str(fixture(ctx, "fed")), "--n", "10",
                                                        "--episodes", "1", "-q"], [r"federated"]),
        cli_case("sim --steps -1", lambda ctx: sim_args(ctx, "--steps", "-1", "--timeout", "20"), [r"steps"]),
        cli_case("sim --timeout -5", lambda ctx: sim_args(ctx, "--steps", "2", "--timeout", "-5"), [r"timeout"]),
        cli_case("sim --speedup 0", lambda ctx: sim_args(ctx, "--steps", "2", "--speedup", "0", "--timeout", "20"),
                 [r"speedup"]),
        cli_case("sim k != policy's k", lambda ctx: [*sim_args(ctx, "--steps", "2", "--timeout", "20"), "--k", "4"],
                 [k_name]),
        cli_case("sim --n 500 (zone capacity)", lambda ctx: [*sim_args(ctx, "--steps", "2", "--timeout", "60"),
                                                             "--n", "500"], [r"capacity|do not fit|holds"]),
        cli_case("sim --n 100000 (zone capacity)", lambda ctx: [*sim_args(ctx, "--steps", "2", "--timeout", "20"),
                                                                "--n", "100000"], [r"capacity|do not fit|holds"],
                 timeout=60),
    ]


# --- bad files -----------------------------------------------------------------------------

def file_case(name: str, make: Callable[[Ctx, Path], Path], command: str = "eval", ignored: bool = False) -> Case:
    """A corrupt checkpoint given to `altmarl eval` (or `sim --policy`): refused, naming the file; the file and
    the good run next to it unchanged."""

    def run(ctx: Ctx) -> Row:
        slug = re.sub(r"[^\w.-]+", "-", name).strip("-")
        target = make(ctx, ctx.path("files", slug + ".npz"))
        if command == "eval":
            argv = fx.altmarl("eval", str(target), *EVAL_QUICK)
        else:
            argv = fx.altmarl(*sim_args(ctx, "--steps", "2", "--timeout", "20"))
            argv[argv.index("--policy") + 1] = str(target)
        before = fx.digests(target, fixture(ctx, "run"))
        proc = ctx.run(argv)
        lost = fx.compare(before, fx.digests(target, fixture(ctx, "run")))
        result, clear, evidence = fx.outcome(proc), fx.error_clear(proc, [re.escape(target.name)]), fx.first_error(proc)
        if proc.returncode == 0 and command == "eval":  # accepted: is it the intact file's policy, read right?
            good = ctx.run([*argv[:argv.index(str(target))], str(checkpoint(ctx)), *EVAL_QUICK])
            same = untimed(good.stdout.replace(str(checkpoint(ctx)), str(target))) == untimed(proc.stdout)
            if same and ignored:
                result, clear = "ran on: results identical to the intact file's", "- (nothing to refuse)"
                evidence = "the flipped byte is in a field zip readers skip; every array and the digest verified"
            elif same:
                evidence = "results identical to the intact file's, yet nothing says the file was altered"
            else:
                evidence = "results differ from the intact file's: a corrupt policy was used silently"
        return Row(name, "file", result, lost, clear, evidence, fx.shown(argv), proc.wall)

    return Case(name, "file", run)


def untimed(text: str) -> str:
    """Command output without its timings, to compare two evaluations."""
    return re.sub(r"\bin [0-9.]+ ?s\b", "in - s", text)


def flipped(region: str, where: float, bit: int = 3) -> Callable[[Ctx, Path], Path]:
    def make(ctx: Ctx, target: Path) -> Path:
        source = checkpoint(ctx)
        start, end = fx.zip_regions(source)[region]
        return fx.flip_bit(source, target, start + int((end - start - 1) * where), bit)

    return make


def flipped_at(fraction: float) -> Callable[[Ctx, Path], Path]:
    def make(ctx: Ctx, target: Path) -> Path:
        source = checkpoint(ctx)
        return fx.flip_bit(source, target, int(fraction * (source.stat().st_size - 1)), 5)

    return make


def truncated(keep: Callable[[int], int]) -> Callable[[Ctx, Path], Path]:
    def make(ctx: Ctx, target: Path) -> Path:
        data = checkpoint(ctx).read_bytes()
        target.write_bytes(data[:keep(len(data))])
        return target

    return make


def npy_renamed(ctx: Ctx, target: Path) -> Path:
    import numpy as np

    with open(target, "wb") as handle:
        np.save(handle, np.zeros((5, 35, 5), dtype=np.float32))
    return target


def meta_of_type(ctx: Ctx, target: Path) -> Path:
    import numpy as np

    content = fx.members(checkpoint(ctx))
    content["__meta__.npy"] = fx.npy_bytes(np.frombuffer(b'["format", "altmarl-checkpoint", 2]', dtype=np.uint8))
    return fx.write_zip(target, content)


def claims_tib(ctx: Ctx, target: Path) -> Path:
    return fx.claim_size(checkpoint(ctx), target, "global_q.npy", 2**40)


def npy_header_tib(ctx: Ctx, target: Path) -> Path:
    return fx.npy_header_claims(checkpoint(ctx), target, "global_q.npy", (2**20, 2**20))


def listing_tib(ctx: Ctx, target: Path) -> Path:
    meta = fx.read_meta(checkpoint(ctx))
    meta["arrays"]["global_q"]["shape"] = [2**20, 2**20]
    return fx.with_meta(checkpoint(ctx), target, meta)


def extra_member(ctx: Ctx, target: Path) -> Path:
    import numpy as np

    content = fx.members(checkpoint(ctx))
    content["extra.npy"] = fx.npy_bytes(np.arange(10))
    return fx.write_zip(target, content)


def no_digest(ctx: Ctx, target: Path) -> Path:
    meta = fx.read_meta(checkpoint(ctx))
    del meta["digest"]
    return fx.with_meta(checkpoint(ctx), target, meta, redigest=False)


def stale_digest(ctx: Ctx, target: Path) -> Path:
    meta = fx.read_meta(checkpoint(ctx))
    meta["k"] = 4
    return fx.with_meta(checkpoint(ctx), target, meta, redigest=False)


def forged_meta(**changes: Any) -> Callable[[Ctx, Path], Path]:
    """A well-formed, re-digested checkpoint whose metadata says something else (task overrides, k)."""

    def make(ctx: Ctx, target: Path) -> Path:
        meta = fx.read_meta(checkpoint(ctx))
        for key, value in changes.items():
            if key == "zones":
                meta["task_overrides"] = {**meta.get("task_overrides", {}), "zones": value}
                meta["task_config"]["zones"] = value
            else:
                meta[key] = value
        return fx.with_meta(checkpoint(ctx), target, meta)

    return make


def empty(ctx: Ctx, target: Path) -> Path:
    target.write_bytes(b"")
    return target


def directory(ctx: Ctx, target: Path) -> Path:
    """A run directory whose checkpoint.npz is a directory."""
    run_dir = target.with_suffix("")
    (run_dir / "checkpoint.npz").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoint.npz" / "inside.txt").write_text("not a checkpoint\n")
    return run_dir


def file_cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = [
        file_case("bit flip: global_q data", flipped("global_q.npy data", 0.5)),
        file_case("bit flip: __meta__ data", flipped("__meta__.npy data", 0.3)),
        file_case("bit flip: local header name", flipped("local_policy.npy header name", 0.5)),
        file_case("bit flip: local zip64 extra", flipped("local_policy.npy header extra", 0.5), ignored=True),
        file_case("bit flip: central directory", flipped("central directory", 0.4)),
        file_case("bit flip: end record", flipped("end record", 0.6)),
    ]
    for fraction in sorted(rng.uniform(0.0, 1.0) for _ in range(3)):
        cases.append(file_case(f"bit flip at {fraction:.0%}", flipped_at(fraction)))
    cases += [
        file_case("truncated to 30 B", truncated(lambda size: 30)),
        file_case("truncated to half", truncated(lambda size: size // 2)),
        file_case("truncated: end record cut", truncated(lambda size: size - 10)),
        file_case("truncated by 1 B", truncated(lambda size: size - 1)),
        file_case(".npy renamed .npz", npy_renamed),
        file_case("metadata a JSON list", meta_of_type),
        file_case("zip entry claims 1 TiB", claims_tib),
        file_case(".npy header claims 8 TiB", npy_header_tib),
        file_case("metadata lists 8 TiB (signed)", listing_tib),
        file_case("extra unlisted member", extra_member),
        file_case("digest deleted", no_digest),
        file_case("metadata changed, digest stale", stale_digest),
        file_case("signed metadata: zones 1000", forged_meta(zones=1000)),
        file_case("signed metadata: k 4", forged_meta(k=4)),
        file_case("empty file", empty),
        file_case("directory as checkpoint.npz", directory),
        file_case("sim --policy bit-flipped", flipped("global_q.npy data", 0.5), command="sim"),
        file_case("sim --policy truncated", truncated(lambda size: size // 2), command="sim"),
    ]
    return cases


# --- no silent loss ------------------------------------------------------------------------

KILLER = """
import os, signal, sys, time
from altmarl_ros.marl import checkpoint as ckpt
from altmarl_ros import cli, runs
at = int(sys.argv[1])
seen = []
def hook(step):
    seen.append(step)
    print(f"FAULT-STEP {len(seen)} {time.monotonic():.4f} {step}", file=sys.stderr, flush=True)
    if len(seen) == at:
        os.kill(os.getpid(), signal.SIGKILL)
ckpt._fault_hook = hook
if at == 0:  # killed after training, before the save begins
    runs.write_run = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(cli.main(sys.argv[2:]))
"""


def existing_run(ctx: Ctx, name: str, notes: bool = True) -> Path:
    """A copy of the fixture run (seed 0), plus a file of the user's own that a replace must keep."""
    target = ctx.path("loss", name)
    if target.exists():
        shutil.rmtree(target)
    for stale in target.parent.glob(f".{name}.altmarl-*"):  # what a killed save of an earlier invocation left
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    shutil.copytree(fixture(ctx, "run"), target)
    if notes:
        (target / "notes.txt").write_text("the user's own notes\n")
    return target


def killer_argv(at: int, run_dir: Path) -> list[str]:
    return [sys.executable, "-c", KILLER, str(at), "train", "--task", "zones", "--k", str(GRAPH_K), "--seed", "1",
            "--out", str(run_dir), "--force", *TINY]


def steps_of(proc: fx.Proc) -> list[str]:
    return [line.split(maxsplit=3)[3] for line in proc.stderr.splitlines() if line.startswith("FAULT-STEP ")]


def judge_run(run_dir: Path, before: dict[str, str]) -> str:
    """'no (...)' when the directory holds one complete run (old byte-identical, or the new one), else 'yes: ...'."""
    notes = run_dir / "notes.txt"
    try:
        identity = fx.run_identity(run_dir)
    except Exception as exc:  # any failure to load is lost data
        return f"yes: no complete run ({type(exc).__name__}: {str(exc)[:80]})"
    if str(notes) in before and not notes.exists():
        return "yes: notes.txt gone"
    if identity == "seed=0":
        changed = fx.compare(before, fx.digests(run_dir))
        return "no (old run, byte-identical)" if changed == "no" else f"yes: old run altered ({changed[5:]})"
    return "no (new run complete, notes.txt kept)" if identity == "seed=1" else f"yes: unexpected run {identity}"


def loss_force(ctx: Ctx) -> Row:
    run_dir = existing_run(ctx, "force")
    before = fx.digests(run_dir)
    argv = killer_argv(-1, run_dir)
    start = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process on Linux
    proc = ctx.run(argv)
    ctx.save_steps, ctx.force_wall = steps_of(proc), proc.wall
    stamps = [float(line.split()[2]) for line in proc.stderr.splitlines() if line.startswith("FAULT-STEP ")]
    ctx.save_at = stamps[0] - start if stamps else proc.wall
    lost = judge_run(run_dir, before)
    shown = fx.shown(fx.altmarl(*argv[4:]))
    return Row("train --force onto a run", "loss", fx.outcome(proc) + " (replaced)" * (proc.returncode == 0), lost,
               "-" if proc.returncode == 0 else fx.error_clear(proc, []), f"{len(steps_of(proc))} save steps",
               shown, proc.wall)


def save_steps(ctx: Ctx) -> list[str]:
    if ctx.save_steps is None:
        loss_force(ctx)
    return ctx.save_steps or []


def loss_kill_at(ordinal: int) -> Callable[[Ctx], Row]:
    """SIGKILL at a random step of the save (the `ordinal`-th draw of --seed)."""

    def run(ctx: Ctx) -> Row:
        steps = save_steps(ctx)
        draws = random.Random(ctx.seed + 7).sample(range(1, len(steps) + 1), min(3, len(steps)))
        at = draws[ordinal] if ordinal < len(draws) else 1
        run_dir = existing_run(ctx, f"kill-save-{ordinal}")
        before = fx.digests(run_dir)
        proc = ctx.run(killer_argv(at, run_dir))
        where = f"save step {at}/{len(steps)} ({steps[at - 1] if steps else '?'})"
        leftovers = [p.name for p in run_dir.parent.iterdir() if p.name.startswith(f".{run_dir.name}.altmarl-")]
        return Row(f"SIGKILL in save #{ordinal + 1}", "loss", fx.outcome(proc) + f" at {where}",
                   judge_run(run_dir, before), "-", f"temporaries left for the next save: {len(leftovers)}",
                   f"KILLER at={at}: " + fx.shown(fx.altmarl(*killer_argv(at, run_dir)[4:])), proc.wall)

    return run


def loss_kill_before_save(ctx: Ctx) -> Row:
    run_dir = existing_run(ctx, "kill-before-save")
    before = fx.digests(run_dir)
    proc = ctx.run(killer_argv(0, run_dir))
    return Row("SIGKILL after training, before save", "loss", fx.outcome(proc), judge_run(run_dir, before), "-",
               "--force: the old run must stay until the new one is complete",
               "KILLER at=0: " + fx.shown(fx.altmarl(*killer_argv(0, run_dir)[4:])), proc.wall)


def loss_kill_random(ordinal: int) -> Callable[[Ctx], Row]:
    """SIGKILL from outside at a seeded random time: within a --force run's duration (#1), around its save (#2)."""

    def run(ctx: Ctx) -> Row:
        save_steps(ctx)
        total = ctx.force_wall
        draw = random.Random(ctx.seed * 100 + ordinal)
        delay = draw.uniform(0.3 * total, total) if ordinal == 0 else draw.uniform(ctx.save_at - 0.1,
                                                                                    ctx.save_at + 0.1)
        run_dir = existing_run(ctx, f"kill-random-{ordinal}")
        before = fx.digests(run_dir)
        argv = killer_argv(-1, run_dir)
        start = time.monotonic()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ctx.env,
                                 cwd=fx.REPO_ROOT, preexec_fn=fx.limits(ctx.memory), start_new_session=True)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            fx.kill_tree(child.pid)
        out_text, err_text = child.communicate()
        proc = fx.Proc(argv, child.returncode, out_text, err_text, time.monotonic() - start)
        steps = steps_of(proc)
        where = f"in save step {len(steps)} ({steps[-1]})" if steps and proc.returncode and proc.returncode < 0 \
            else "before the save" if proc.returncode and proc.returncode < 0 else "after it finished"
        return Row(f"SIGKILL at random time #{ordinal + 1}", "loss", fx.outcome(proc) + f" at {delay:.1f} s, {where}",
                   judge_run(run_dir, before), "-", f"of a {total:.1f} s --force run whose save began at "
                   f"{ctx.save_at:.2f} s",
                   fx.shown(fx.altmarl(*argv[4:])) + f"  # SIGKILL after {delay:.1f} s", proc.wall)

    return run


def loss_no_force(ctx: Ctx) -> Row:
    run_dir = existing_run(ctx, "no-force", notes=False)
    before = fx.digests(run_dir)
    argv = fx.altmarl("train", "--task", "zones", "--k", "3", "--seed", "1", "--out", str(run_dir), *TINY)
    proc = ctx.run(argv)
    return Row("train --out onto a run, no --force", "loss", fx.outcome(proc), fx.compare(before, fx.digests(run_dir)),
               fx.error_clear(proc, [r"--force", re.escape(run_dir.name)]), fx.first_error(proc), fx.shown(argv),
               proc.wall)


FULL_DISK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # Python ignores SIGXFSZ: a bigger write is EFBIG
from altmarl_ros.cli import main
sys.exit(main(sys.argv[1:]))
"""


def loss_full_disk(ctx: Ctx) -> Row:
    """The save fails after training (no file may exceed 4 KiB; the probe passes, the checkpoint does not)."""
    run_dir = existing_run(ctx, "full-disk")
    before = fx.digests(run_dir)
    argv = [sys.executable, "-c", FULL_DISK, "train", "--task", "zones", "--k", "3", "--seed", "1", "--out",
            str(run_dir), "--force", *TINY]
    proc = ctx.run(argv)
    return Row("save fails after training (EFBIG)", "loss", fx.outcome(proc), judge_run(run_dir, before),
               fx.error_clear(proc, [re.escape(run_dir.name)]), fx.first_error(proc),
               "ulimit -f 4 && " + fx.shown(fx.altmarl(*argv[3:])), proc.wall)


def loss_cwd(ctx: Ctx) -> Row:
    """`--out .` from inside a run with --force: replacing the current directory is refused."""
    run_dir = existing_run(ctx, "cwd-run")
    before = fx.digests(run_dir)
    argv = fx.altmarl("train", "--task", "zones", "--k", "3", "--out", ".", "--force", *TINY)
    proc = ctx.run(argv, cwd=run_dir)
    return Row("--out . (cwd is a run) --force", "loss", fx.outcome(proc), fx.compare(before, fx.digests(run_dir)),
               fx.error_clear(proc, [r"current directory"]), fx.first_error(proc),
               f"cd {run_dir} && " + fx.shown(argv), proc.wall)


def loss_refused_out(name: str, target: Callable[[Ctx], tuple[Path, list[Path]]], names: Sequence[str]) -> Case:
    """`--out` where no run can be written: refused before training, and what is there kept."""

    def run(ctx: Ctx) -> Row:
        out_dir, kept = target(ctx)
        before = fx.digests(*kept)
        argv = fx.altmarl("train", "--task", "zones", "--k", "3", "--out", str(out_dir), *TINY)
        proc = ctx.run(argv)
        lost = fx.compare(before, fx.digests(*kept)) if kept else "-"
        return Row(name, "loss", fx.outcome(proc), lost, fx.error_clear(proc, names), fx.first_error(proc),
                   fx.shown(argv), proc.wall)

    return Case(name, "loss", run)


def under_file(ctx: Ctx) -> tuple[Path, list[Path]]:
    blocker = ctx.path("loss", "a-file.txt")
    blocker.write_text("a plain file\n")
    return blocker / "run", [blocker]


def is_file(ctx: Ctx) -> tuple[Path, list[Path]]:
    blocker = ctx.path("loss", "plain.txt")
    blocker.write_text("a plain file the run would overwrite\n")
    return blocker, [blocker]


def foreign_dir(ctx: Ctx) -> tuple[Path, list[Path]]:
    folder = ctx.path("loss", "thesis", "thesis.tex")
    folder.write_text("\\documentclass{article}\n")
    return folder.parent, [folder.parent]


def loss_cases() -> list[Case]:
    return [
        Case("train --out onto a run, no --force", "loss", loss_no_force),
        Case("train --force onto a run", "loss", loss_force),
        Case("SIGKILL after training, before save", "loss", loss_kill_before_save),
        *[Case(f"SIGKILL in save #{i + 1}", "loss", loss_kill_at(i)) for i in range(3)],
        *[Case(f"SIGKILL at random time #{i + 1}", "loss", loss_kill_random(i)) for i in range(2)],
        loss_refused_out("--out under a file", under_file, [r"a-file\.txt"]),
        loss_refused_out("--out is a file", is_file, [r"plain\.txt"]),
        loss_refused_out("--out holds other files", foreign_dir, [r"thesis"]),
        loss_refused_out("--out in /proc", lambda ctx: (Path("/proc/altmarl-fault-run"), []), [r"/proc"]),
        loss_refused_out("--out a mount point (/dev/shm)", lambda ctx: (Path("/dev/shm"), []), [r"/dev/shm"]),
        Case("--out . (cwd is a run) --force", "loss", loss_cwd),
        Case("save fails after training (EFBIG)", "loss", loss_full_disk),
    ]


# --- the graph -----------------------------------------------------------------------------

GRAPH_RUNS = [  # attacks that share one graph, in order; a graph that dies hands the rest to a fresh one
    # request-2e6 comes two windows after request-1e6: a node logs one refusal of a kind per 5 s
    ("forged-step", "request-1e6", "samples-malformed", "cmd-vel-nan", "request-2e6", "heartbeat-flood",
     "fleet-kill"),
    ("heartbeat-flood@1",),  # the same flood at speedup 1: is a degradation the 4x tighter reply timeout?
    ("stats-garbage", "stats-inf-step", "stats-deep-nesting"),
    ("stats-out-of-range",),  # a well-formed lie: only the summary at the end would use it
]
GRAPH_LABELS = {
    "forged-step": "broadcast step 2^31-1", "samples-malformed": "malformed samples",
    "request-1e6": "sample request of 10^6 ids", "request-2e6": "request 2x10^6 ids (recorder)",
    "cmd-vel-nan": "NaN cmd_vel", "heartbeat-flood": "heartbeat flood", "fleet-kill": "kill a fleet process",
    "heartbeat-flood@1": "heartbeat flood, speedup 1",
    "stats-garbage": "garbage on /altmarl/stats", "stats-inf-step": "stats step Infinity",
    "stats-deep-nesting": "stats JSON nested 10^5 deep", "stats-out-of-range": "stats s_g 99, a_g -7",
}
EXPECT_LOG = {  # what the logs of the attack's window must say (the drop, or the death)
    "forged-step": r"forged|far below|restart|reset|2147483647",
    "samples-malformed": r"dropped a sample on", "request-1e6": r"dropped a sample request",
    "request-2e6": r"dropped a sample request", "cmd-vel-nan": r"dropped a command",
    "heartbeat-flood": r"dropped a heartbeat", "heartbeat-flood@1": r"dropped a heartbeat",
    "fleet-kill": r"fleet_1 exited",
    "stats-garbage": r"dropped a statistics message", "stats-inf-step": r"dropped a statistics message",
    "stats-deep-nesting": r"dropped a statistics message", "stats-out-of-range": r"dropped a statistics message",
}
GAP, WARMUP = 4, 3


def graph_cases() -> list[Case]:
    return [*(Case("graph: " + GRAPH_LABELS[a], "graph", attack=a) for group in GRAPH_RUNS for a in group),
            Case("graph: coordinator SIGKILL + restart", "graph", graph_restart)]


def slice_logs(offsets: dict[str, int], until: dict[str, int]) -> dict[str, str]:
    """Each log's bytes written between two snapshots of their sizes."""
    found = {}
    for path, start in offsets.items():
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            handle.seek(start)
            end = until.get(path)
            found[path] = handle.read(None if end is None else max(0, end - start)).decode(errors="replace")
    return found


def start_graph(ctx: Ctx, attacks: Sequence[str], index: int) -> dict[str, Any]:
    """One `altmarl sim` and one hostile peer on a fresh domain; returns what both left behind."""
    base = ctx.path("graph", f"g{index}", "x").parent
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    logs, stderr_file, stdout_file = base / "logs", base / "altmarl-sim.stderr", base / "altmarl-sim.stdout"
    record = "request-2e6" in attacks
    speedup = next((a.split("@")[1] for a in attacks if "@" in a), "4")
    env = {**ctx.env, "ROS_DOMAIN_ID": str((ctx.domain + index) % 100 + 1),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    argv = fx.altmarl("sim", "--policy", str(fixture(ctx, "run")), "--n", str(GRAPH_N), "--k", str(GRAPH_K),
                     "--steps", "0", "--speedup", speedup, "--world-config", str(fixture(ctx, "world")),
                     "--robots-per-process", "4", "--timeout", "600", "--log-dir", str(logs), "-q",
                     *(["--record", str(base / "rec")] if record else []))
    budget = 90 + 25 * len(attacks) * (4 / float(speedup))
    start = time.monotonic()
    with open(stdout_file, "w") as out_handle, open(stderr_file, "w") as err_handle:
        sim = subprocess.Popen(argv, stdout=out_handle, stderr=err_handle, env=env, cwd=fx.REPO_ROOT,
                               preexec_fn=fx.limits(ctx.memory), start_new_session=True)
    spec = {"n": GRAPH_N, "attacks": list(attacks), "warmup": WARMUP, "gap": GAP, "log_dir": str(logs),
            "stderr_file": str(stderr_file), "sim_pid": sim.pid, "out": str(base / "peer.json"),
            "startup_timeout": 90, "stall_timeout": 25}
    with open(base / "peer.log", "w") as peer_log:
        peer = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_faults.py")), "peer",
                                 json.dumps(spec)], stdout=peer_log, stderr=subprocess.STDOUT, env=env,
                                cwd=fx.REPO_ROOT, preexec_fn=fx.limits(ctx.memory), start_new_session=True)
    peer_timed_out = False
    try:
        peer.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        peer_timed_out = True
        fx.kill_tree(peer.pid)
        peer.wait()
    tree = {pid: fx.started(pid) for pid in fx.descendants(sim.pid)}
    sim_timed_out = False
    if sim.poll() is None:
        os.kill(sim.pid, signal.SIGINT)  # altmarl sim's Ctrl-C: stop the graph, print the summary
    try:
        sim.wait(timeout=60)
    except subprocess.TimeoutExpired:
        sim_timed_out = True
        fx.kill_tree(sim.pid)
        sim.wait()
    left = [pid for pid, since in tree.items() if since is not None and fx.started(pid) == since]
    for pid in left:  # what the graph left running: these very processes, not a later one with a reused pid
        fx.kill_tree(pid)
    try:
        seen = json.loads((base / "peer.json").read_text())
    except (OSError, ValueError):
        seen = {"windows": [], "aborted": "the peer wrote nothing: " + (base / "peer.log").read_text()[-300:]}
    return {"seen": seen, "rc": sim.returncode, "stdout": stdout_file.read_text(errors="replace"),
            "stderr": stderr_file.read_text(errors="replace"), "logs": logs, "record": base / "rec" if record else None,
            "argv": argv, "env": env, "wall": time.monotonic() - start, "peer_timed_out": peer_timed_out,
            "sim_timed_out": sim_timed_out, "left": len(left)}


def graph_row(attack: str, window: dict[str, Any], until: dict[str, int], graph: dict[str, Any], last: bool) -> Row:
    """Judge one attack from its window: steps went on, robots decided, the drop was logged, nothing raised."""
    logs = slice_logs(window["offsets"], until)
    tracebacks = sorted(Path(p).name for p, text in logs.items() if "Traceback (most recent call last)" in text)
    expect = EXPECT_LOG[attack]
    said = [line.strip() for text in logs.values() for line in text.splitlines() if re.search(expect, line)]
    steps, decided = window["steps"], window["decided"]
    alive = GRAPH_N - (4 if attack == "fleet-kill" else 0)
    deciders = sum(1 for count in decided.values() if count >= 1)
    evidence = (f"steps {window['step0']}->{steps[-1] if steps else window['step0']}, {deciders}/{alive} robots "
                f"decided after; k_eff min {min(window['k_eff'], default='-')}; {window['note']}")
    if window["malformed1"] >= 0 and window["malformed0"] >= 0:
        evidence += f"; coordinator malformed +{window['malformed1'] - window['malformed0']}"
    if attack == "forged-step":
        evidence += f"; {window['forged_decisions']} decisions on the forged step"
    raised = {Path(p).name: fx.last_exception(t) for p, t in logs.items() if "Traceback (most recent call last)" in t}
    if tracebacks:
        result = f"crashed: {tracebacks[0]}: {raised[tracebacks[0]]}"
    elif window["end"]:
        result = f"stopped: {window['end']}"
    elif len(steps) < GAP - 1 or deciders < alive:
        result = f"stalled ({len(steps)} steps, {deciders}/{alive} robots deciding)"
    else:
        result = "ran on"
    short = [k for k in window["k_eff"] if k < GRAPH_K]
    if attack == "fleet-kill" and result == "ran on":
        reported = re.search(r"processes that died\s+\[.*fleet_1", graph["stdout"])
        result = "ran on, fleet_1 reported dead" if reported else "ran on, death not in the summary"
    presumed = [m.group(1) for text in logs.values() for m in re.finditer(r"robots presumed dead[^:]*: (\[[^]]*\])",
                                                                           text)]
    if result == "ran on" and attack != "fleet-kill" and (short or presumed):  # live robots lost to the attack
        result = "ran on, degraded:" + (f" k_eff < {GRAPH_K} in {len(short)}/{len(window['k_eff'])} steps (min "
                                        f"{min(short)})" if short else "") + \
            (f"{',' if short else ''} live robots presumed dead {' '.join(presumed)}" if presumed else "")
    if last and graph["rc"] != 0 and "altmarl-sim.stderr" not in tracebacks:
        if "Traceback (most recent call last)" in graph["stderr"]:
            result += f"; then altmarl sim crashed: {fx.last_exception(graph['stderr'])}"
            tracebacks.append("altmarl-sim.stderr")
        else:
            result += f"; altmarl sim exit {graph['rc']}"
    if tracebacks:
        clear = f"no: traceback in {', '.join(tracebacks)}"
    elif not said:
        clear = "no: no log line about it" if attack == "forged-step" else f"no: nothing logged matching {expect!r}"
    else:
        clear = "yes"
    lost = "-"
    if attack == "request-2e6" and graph["record"] is not None:
        lost = recording_state(graph["record"])
    if said:
        evidence += f"; log: {said[0][:120]}"
    return Row("graph: " + GRAPH_LABELS[attack], "graph", result, lost, clear, evidence, graph_command(graph),
               graph["wall"])


def recording_state(path: Path) -> str:
    """'no (...)' when the run's recording is still readable after the oversized message."""
    try:
        from altmarl_ros.recording import read_counts

        counts = read_counts(path)
    except Exception as exc:  # an unreadable recording is lost data
        return f"yes: recording unreadable ({type(exc).__name__})"
    return f"no (recording readable, {sum(counts.values())} messages)"


def graph_command(graph: dict[str, Any]) -> str:
    env = f"ROS_DOMAIN_ID={graph['env']['ROS_DOMAIN_ID']} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
    return env + fx.shown(graph["argv"]) + "  # + benchmarks/_faults.py peer"


def graph_restart(ctx: Ctx) -> Row:
    """The coordinator SIGKILLed mid-run and started again: robots stop by themselves while it is down, then
    follow its new session from step 1 (the second session runs all its steps, every robot deciding)."""
    base = ctx.path("graph", "restart", "x").parent
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    steps = 12  # per coordinator run; the kill comes at the 3rd step altmarl sim's monitor sees (it may join late)
    spec = {"n": GRAPH_N, "k": GRAPH_K, "policy": str(fixture(ctx, "run")), "world": str(fixture(ctx, "world")),
            "robots_per_process": 4, "speedup": 4.0, "steps": steps, "at": 3, "down": 3.0, "timeout": 150,
            "log_dir": str(base / "logs"), "out": str(base / "restart.json")}
    env = {**ctx.env, "ROS_DOMAIN_ID": str((ctx.domain + 50) % 100 + 1), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    argv = [sys.executable, str(Path(__file__).with_name("_faults.py")), "restart", json.dumps(spec)]
    proc = fx.run_bounded(argv, 200, ctx.memory, env=env)
    command = (f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} python3 benchmarks/_faults.py restart '<spec>'  # run_system, "
               "coordinator SIGKILLed at the 3rd step seen, down 3 s, restarted")
    logs = {p.name: p.read_text(errors="replace") for p in (base / "logs").glob("*.log")}
    tracebacks = sorted(name for name, text in logs.items() if "Traceback (most recent call last)" in text)
    stopped = sum("no coordinator message" in text for name, text in logs.items() if name.startswith("fleet"))
    followed = sum(len(re.findall(r"following coordinator session", text)) >= 2 for name, text in logs.items()
                   if name.startswith("fleet"))
    fleets = sum(name.startswith("fleet") for name in logs)
    try:
        seen = json.loads((base / "restart.json").read_text())
    except (OSError, ValueError):
        return Row("graph: coordinator SIGKILL + restart", "graph", fx.outcome(proc), "-",
                   fx.error_clear(proc, []) if proc.returncode else "no: no result", fx.first_error(proc), command,
                   proc.wall)
    got = seen["steps"]
    back = next((i for i in range(1, len(got)) if got[i] <= got[i - 1]), len(got))
    second = got[back:]  # the steps of the restarted coordinator that altmarl sim's monitor saw
    decided = seen["decisions_per_step"]
    # at least session 2's decisions on each of its steps (the last one's may come after the monitor has stopped)
    everyone = all(decided.get(str(step), 0) >= GRAPH_N for step in range(1, steps))
    coordinator = logs.get("coordinator.log", "")
    finished = coordinator.count("coordinator: n=") == 2 and f"{steps} decision steps done" in coordinator
    ok = bool(seen["events"]) and finished and everyone and followed == fleets and not seen["died"]
    result = "recovered" if ok else f"not recovered ({fx.outcome(proc)})"
    first, end = (second[0], second[-1]) if second else ("-", "-")
    evidence = (f"restarted coordinator ran its {steps} steps: {'yes' if finished else 'no'}; every robot decided "
                f"on steps 1..{steps - 1}: {'yes' if everyone else 'no'}; fleets that stopped their robots while "
                f"it was down {stopped}/{fleets}, that followed the new session from step 1 {followed}/{fleets}; "
                f"altmarl sim's monitor saw its steps {first}..{end}")
    if tracebacks:
        clear = f"no: traceback in {', '.join(tracebacks)}"
    elif stopped < fleets or followed < fleets:
        clear = "no: not every fleet logged stopping and following the new session"
    else:
        clear = "yes"
    return Row("graph: coordinator SIGKILL + restart", "graph", result, "-", clear, evidence, command, proc.wall)


def run_graph_group(ctx: Ctx, attacks: list[str], counter: list[int], report: Callable[[Row], None]) -> None:
    """Run `attacks` on as few graphs as possible: a graph that dies hands the rest to a fresh one."""
    pending = list(attacks)
    while pending:
        counter[0] += 1
        graph = start_graph(ctx, pending, counter[0])
        seen = graph["seen"]
        windows = seen.get("windows", [])
        if not windows:
            why = " ".join((seen.get("aborted") or "no step seen").split())[-100:]
            tail = fx.last_exception(graph["stderr"]) if "Traceback" in graph["stderr"] else graph["stderr"][-200:]
            tail = " ".join(tail.split())
            for attack in pending:
                report(Row("graph: " + GRAPH_LABELS[attack], "graph", f"not run: graph did not step ({why})", "-",
                           f"no: {tail.strip()[:80]}", "", graph_command(graph), graph["wall"]))
            return
        ends = [w["offsets"] for w in windows[1:]] + [seen.get("offsets_end", {})]
        for i, window in enumerate(windows):
            last = i == len(windows) - 1 and (not seen.get("aborted") or len(windows) == len(pending))
            row = graph_row(window["attack"], window, ends[i], graph, last)
            if last and graph["sim_timed_out"]:
                row.outcome += "; altmarl sim still running 60 s after Ctrl-C (killed)"
            if last and graph["left"]:
                row.outcome += f"; {graph['left']} node processes left running after it exited (killed)"
            report(row)
        done = len(windows)
        pending = pending[done:]
        if pending and not seen.get("aborted"):
            for attack in pending:
                report(Row("graph: " + GRAPH_LABELS[attack], "graph", "not run (peer stopped early)", "-", "no",
                           "", graph_command(graph), graph["wall"]))
            return


# --- the table -----------------------------------------------------------------------------

def markdown(rows: Sequence[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| case | outcome | data lost | error clear | evidence |", "|---|---|---|---|---|"]
    for row in rows:
        evidence = row.evidence if len(row.evidence) <= 200 else row.evidence[:197] + "..."
        lines.append(f"| {cell(row.case)} | {cell(row.outcome)} | {cell(row.data_lost)} | {cell(row.error_clear)} | "
                     f"{cell(evidence)} |")
    return "\n".join(lines)


def findings(rows: Sequence[Row]) -> list[Row]:
    """Rows that show a problem: a crash, a silent accept, lost data, an unclear error, a timeout."""
    bad = []
    for row in rows:
        if row.error_clear.startswith("no") or row.data_lost.startswith("yes") or \
                re.match(r"crashed|timeout|stalled|not |stopped|exit 1|harness", row.outcome) or \
                "crashed" in row.outcome or "degraded" in row.outcome:
            bad.append(row)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", metavar="PATTERN", help="run only the cases whose name matches this regular "
                        "expression")
    parser.add_argument("--quick", action="store_true", help="skip the graph cases (no rclpy needed)")
    parser.add_argument("--work-dir", type=Path, help="where fixtures, corrupt files and logs go (default: a "
                        "fresh temporary directory, kept)")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command case (default 120)")
    parser.add_argument("--memory-limit", type=float, default=3.0, help="RLIMIT_AS per process in GiB (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="command cases run at once (graph cases alone; "
                        "default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random bit-flip positions and kill points")
    parser.add_argument("--domain-id", type=int, help="first ROS_DOMAIN_ID of the graphs (default: random)")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    args = parser.parse_args(argv)

    cases = [*input_cases(), *file_cases(args.seed), *loss_cases(), *([] if args.quick else graph_cases())]
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    if args.list:
        print("\n".join(f"{c.kind:6} {c.name}" for c in cases))
        return 0
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="altmarl-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id if args.domain_id is not None else random.Random().randrange(1, 100)
    ctx = Ctx(work.resolve(), args.timeout, int(args.memory_limit * fx.GIB), args.seed, domain)
    ctx.env = fx.child_env({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    print(f"fault injection: {len(cases)} cases, work dir {ctx.work}, RLIMIT_AS {args.memory_limit:g} GiB, "
          f"timeout {args.timeout:g} s", file=sys.stderr)
    started = time.monotonic()
    order = {c.name: i for i, c in enumerate(cases)}
    rows: list[Row] = []
    total = len(cases)

    def report(row: Row) -> None:
        rows.append(row)
        print(f"[{len(rows):2}/{total}] {row.case}: {row.outcome} | data lost {row.data_lost} | error clear "
              f"{row.error_clear} ({row.wall_s:.1f} s)", file=sys.stderr, flush=True)

    def guarded(case: Case) -> Row:
        assert case.run is not None
        try:
            return case.run(ctx)
        except Exception as exc:  # the harness itself failed on this case: say so in its row
            return Row(case.name, case.kind, f"harness error: {type(exc).__name__}: {str(exc)[:100]}", "-", "-")

    for name in ("run", "world"):
        fixture(ctx, name)
    parallel = [c for c in cases if c.kind in ("input", "file")]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for row in pool.map(guarded, parallel):
            report(row)
    for case in (c for c in cases if c.kind == "loss"):
        report(guarded(case))
    for case in (c for c in cases if c.kind == "graph" and c.run is not None):
        report(guarded(case))
    selected = {c.attack for c in cases if c.kind == "graph"}
    counter = [0]
    for group in GRAPH_RUNS:
        attacks = [a for a in group if a in selected]
        if attacks:
            try:
                run_graph_group(ctx, attacks, counter, report)
            except Exception as exc:  # the harness failed: the rows say so
                for attack in attacks:
                    report(Row("graph: " + GRAPH_LABELS[attack], "graph", f"harness error: {exc}", "-", "-"))
    rows.sort(key=lambda r: order.get(r.case, len(order)))
    wall = time.monotonic() - started
    print(f"## Fault injection ({len(rows)} cases, {wall:.0f} s, RLIMIT_AS {args.memory_limit:g} GiB per process)\n")
    print(markdown(rows))
    bad = findings(rows)
    if bad:
        print("\n### Rows that show a problem, and how to reproduce them\n")
        for row in bad:
            print(f"* **{row.case}** — {row.outcome}; {row.error_clear}; data lost {row.data_lost}\n  `{row.command}`")
    if args.json:
        write_json(args.json, {"settings": {**{k: str(v) for k, v in vars(args).items()}, "domain": domain,
                                            "work_dir": str(ctx.work)},
                               "machine": machine_info(), "wall_s": wall, "rows": [asdict(r) for r in rows]})
    print(f"\nfault injection done in {wall:.0f} s; {len(bad)} rows show a problem; work dir {ctx.work}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
