"""A trained run and its files: one loaded type, one load, one save, one online save.

`load` reads a run directory (or its checkpoint.npz) once and checks every array
against the game its stored task config rebuilds: a `Run` holds the task, the
learner, k, n, seed and metadata, and, for a tabular game, the policies as
tables (`global_q`, `global_policy`, `local_policy`). Deep runs (`learner: deep`)
store network weights as arrays named `global_net/...`, `local_actor/...`,
`local_critic/...`; on a tabular task they also store the networks tabulated,
so the ROS 2 nodes and every tabular tool run them unchanged. `Run.actors()`
gives either kind as policies that act on a `PopulationEnv` (what `altmarl eval`
and the sweeps evaluate). Every process reads its run once: the launch plan
hands the run it checked on to `run_system`, and a learning coordinator writes
its online saves from the run it loaded (`save_online`).

A run directory (checkpoint.npz, history.csv, summary.json) is written as a
whole: the three files go into a staging sibling that replaces the directory
in one rename (checkpoint.atomic_directory), so a run killed at any point
leaves the complete old run or the complete new one, never a mix. Other files
in the directory are kept. `check_run_dir` is what `altmarl train --out`
checks before training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from altmarl_ros.marl.alternation import AlternationResult
from altmarl_ros.marl.budget import MemoryBudgetError
from altmarl_ros.marl.checkpoint import (
    CHECKPOINT_NAME,
    RESERVED_KEYS,
    Checkpoint,
    atomic_directory,
    is_temp_name,
    load_checkpoint,
    probe_writable,
    resolve_path,
    save_checkpoint,
    write_checkpoint,
)
from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.errors import AltmarlError, CheckpointError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy, check_local_policy
from altmarl_ros.tasks import is_tabular, make_env, make_game

HISTORY_NAME = "history.csv"
SUMMARY_NAME = "summary.json"
RUN_FILES = (CHECKPOINT_NAME, HISTORY_NAME, SUMMARY_NAME)


@dataclass
class Run:
    """A trained run as read from its checkpoint (see the module docstring)."""

    path: Path
    checkpoint: Checkpoint  # the arrays and metadata as read (an online save starts from them)
    task: str
    learner: str  # "tabular" or "deep"
    k: int
    n: int
    seed: int
    meta: dict[str, Any]
    game: TabularGame | None  # the task's game when it is tabular, else None
    global_q: np.ndarray | None = None  # (G, #F, A_g) on a tabular game
    global_policy: GlobalPolicy | None = None
    local_policy: np.ndarray | None = None  # (L, G, A_l) on a tabular game
    _actors: Actors | None = dataclasses.field(default=None, repr=False)

    @property
    def tabular(self) -> bool:
        """Whether the run has policies as tables (every run on a tabular task, deep ones included)."""
        return self.game is not None

    def actors(self) -> Actors:
        """The run's policies acting on a PopulationEnv of its task (deep runs import torch here)."""
        if self._actors is None:
            self._actors = _actors(self)
        return self._actors


def list_briefly(names: list[str], most: int = 5) -> str:
    """The first few names of a directory listing, for an error message."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def save(result: Any, out_dir: str | Path, task: str, task_overrides: dict[str, Any]) -> Path:
    """Write a trained run into `out_dir`: checkpoint.npz, history.csv (one row per round), summary.json.

    `result` is a tabular `AlternationResult` or a deep `marl.deep.learners.DeepRunResult`.
    """
    if isinstance(result, AlternationResult):
        return _save_tabular(result, out_dir, task, task_overrides)
    return _save_deep(result, out_dir, task, task_overrides)


def save_online(target: str | Path, run: Run, learner: Any, q_values: np.ndarray, steps: int) -> Path:
    """A learning coordinator's save: `run` (as it was loaded, not read again) with the learned Q table, its
    greedy actions and visit counts (`learner`: an OnlineGLearner) in place of the trained ones, and how
    far online learning got. `target` is a .npz file or a run directory (its checkpoint.npz)."""
    arrays = dict(run.checkpoint.arrays)
    arrays["global_q"] = q_values.astype(np.float32)
    arrays["global_actions"] = np.argmax(q_values, axis=-1).astype(np.int16)
    arrays["online_visits"] = learner.visits
    meta = {key: value for key, value in run.meta.items() if key not in RESERVED_KEYS}
    meta["online"] = {"steps": steps, "updates": int(learner.visits.sum())}
    target = Path(target)
    return save_checkpoint(target if target.suffix == ".npz" else target / CHECKPOINT_NAME, arrays, meta)


def _save_tabular(result: AlternationResult, out_dir: str | Path, task: str, task_overrides: dict[str, Any]
                  ) -> Path:
    out_dir = Path(out_dir)
    best = result.best
    meta = _meta(task, task_overrides, result.game.config, result.k, result.game.n, result.seed, result.history(),
                 result.best_round, best, result.config.reference_k(result.game))
    meta.update(learner="tabular", alternation=dataclasses.asdict(result.config))
    return write_run(out_dir, {
        "global_q": result.global_q.astype(np.float32),
        "global_actions": result.global_policy.actions.astype(np.int16),
        "local_policy": result.local_policy,
        "local_q": result.local_q,
    }, meta, result.history(), dataclasses.asdict(best))


def write_run(out_dir: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], history: list[dict],
              best_record: dict[str, Any]) -> Path:
    """Write checkpoint, history and summary of one run into `out_dir` as a whole (see the module docstring);
    what `save` does once it has the arrays."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, RUN_FILES) as staging:
        write_checkpoint(staging / CHECKPOINT_NAME, arrays, meta)
        _write_new(staging / HISTORY_NAME, _history_csv(history))
        _write_new(staging / SUMMARY_NAME, json.dumps(_summary(meta, best_record), indent=2))
    return out_dir / CHECKPOINT_NAME


def check_run_dir(out_dir: str | Path, force: bool = False) -> None:
    """Refuse an `--out` that already holds a run (unless `force`) or holds other things; probe it writable.

    Runs before training, so a run that cannot be saved is not trained: the
    parent directories are created, a temporary is written and removed there
    (where the new run is staged) and, if `out_dir` exists, inside it (where the
    old run's files are removed once the new run is in place).
    """
    out_dir = Path(out_dir)
    real, cwd = Path(os.path.realpath(out_dir)), Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise AltmarlError(f"--out {out_dir} is the current directory or one above it; a run directory is replaced "
                           "as a whole, so give it a directory of its own (e.g. --out runs/NAME)")
    if os.path.ismount(real):
        raise AltmarlError(f"--out {out_dir} is a mount point; a run directory is replaced as a whole, so give it a "
                           f"directory of its own inside it (e.g. --out {out_dir}/NAME)")
    if out_dir.exists() and not out_dir.is_dir():
        raise AltmarlError(f"--out {out_dir} is a file; a run is written as a directory (checkpoint.npz, "
                           "history.csv, summary.json): choose a new or empty directory")
    if out_dir.is_dir():
        entries = sorted(name for name in os.listdir(out_dir) if not is_temp_name(name))
        held = [name for name in entries if name in RUN_FILES]
        if held and not force:
            raise AltmarlError(f"--out {out_dir} already holds a run ({', '.join(held)}); pass --force to replace it "
                               "(the old run stays until the new one is complete), or choose another directory")
        if entries and not held:
            raise AltmarlError(f"--out {out_dir} exists and holds files that are not an altmarl run "
                               f"({list_briefly(entries)}); "
                               "choose a new or empty directory")
    ancestor = out_dir.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AltmarlError(f"--out {out_dir} cannot be created: {ancestor} is a file, not a directory")
    for directory in (out_dir.absolute().parent, *([out_dir] if out_dir.is_dir() else [])):
        try:
            probe_writable(directory)
        except OSError as exc:
            raise AltmarlError(f"--out {out_dir} is not writable: cannot write in {directory} "
                               f"({exc.strerror or exc}); choose another directory") from exc


def _write_new(path: Path, text: str) -> None:
    """A new file in a private staging directory, flushed to disk before the directory is swapped in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def load(path: str | Path, expect_task: str | None = None, expect_zones: int | None = None,
         checkpoint: Checkpoint | None = None) -> Run:
    """Read a run (or use `checkpoint`, already read from `path`) and check it against its game.

    `expect_task` / `expect_zones`: refuse a run of another task, or a policy for another number of zones.
    """
    checkpoint = checkpoint or load_checkpoint(path)
    meta = checkpoint.meta
    where = resolve_path(path)
    task = meta.get("task")
    if expect_task is not None and task != expect_task:
        raise CheckpointError(f"{where} was trained on task {task!r}, expected {expect_task!r}")
    learner = meta.get("learner", "tabular")
    k, n, seed = (_meta_int(meta, key, where) for key in ("k", "n", "seed"))
    run = Run(where, checkpoint, task, learner, k, n, seed, meta, None)
    if task is not None and not _known_tabular(task):
        if learner != "deep":
            raise CheckpointError(f"{where} holds a tabular run of task {task!r}, which has no tabular game")
        return run
    try:
        game = make_game(task, meta.get("task_overrides", {}))
    except MemoryBudgetError as exc:  # metadata that asks for more memory than allowed: say so as it is
        raise MemoryBudgetError(f"{where}: {exc}", estimate=exc.estimate, budget=exc.budget) from exc
    except AltmarlError as exc:
        raise CheckpointError(f"{where} holds a task config that no longer builds: {exc}") from exc
    if expect_zones is not None and game.num_local_states != expect_zones:
        raise CheckpointError(
            f"{where} is a policy for {game.num_local_states} zones, but this system has {expect_zones} zones")
    index = CountIndex(k, game.num_local_states)
    expected_shapes = {
        "global_q": (game.num_global_states, index.size, game.num_global_actions),
        "global_actions": (game.num_global_states, index.size),
        "local_policy": (game.num_local_states, game.num_global_states, game.num_local_actions),
    }
    for name, shape in expected_shapes.items():
        actual = checkpoint.array(name).shape
        if actual != shape:
            raise CheckpointError(f"{where}: {name} has shape {actual}, but task {task!r} with k={k} needs {shape}")
    try:
        local_policy = check_local_policy(game, checkpoint.array("local_policy"))
    except AltmarlError as exc:
        raise CheckpointError(f"{where}: stored local policy is invalid: {exc}") from exc
    run.game = game
    run.global_q = checkpoint.array("global_q")
    run.global_policy = GlobalPolicy(k, game.num_local_states, checkpoint.array("global_actions"))
    run.local_policy = local_policy
    return run


def _meta_int(meta: dict[str, Any], key: str, where: Path) -> int:
    """An integer of the metadata (0 when absent); anything else is a CheckpointError naming it."""
    value = meta.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{where}: metadata {key!r} must be an integer >= 0, got {value!r}")
    return value


def require_tabular(run: Run) -> Run:
    """The run itself if it has tables; a clear error for a run of a task without a tabular game."""
    if not run.tabular:
        raise CheckpointError(f"{run.path} holds a {run.task!r} run, which has no tabular policy (altmarl eval "
                              "evaluates it)")
    return run


def _known_tabular(task: str) -> bool:
    try:
        return is_tabular(task)
    except AltmarlError:
        return True  # let make_game report the unknown task


# --- deep runs --------------------------------------------------------------------------------

def _meta(task: str, overrides: dict[str, Any], config: dict[str, Any], k: int, n: int, seed: int,
          rounds: list[dict], best_round: int, best: Any, k_ref: Any) -> dict[str, Any]:
    return {
        "task": task, "task_overrides": overrides, "task_config": config, "k": k, "n": n, "seed": seed,
        "best_round": best_round,
        "ne_gap": {"global": best.global_gap, "global_ci95": best.global_gap_ci95, "local": best.local_gap,
                   "local_ci95": best.local_gap_ci95, "local_worst_state": best.local_gap_worst_state,
                   "k_ref": k_ref, "epsilon": max(best.global_gap, best.local_gap)},
        "history": rounds,
    }


def _history_csv(history: list[dict]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _summary(meta: dict[str, Any], best_record: dict[str, Any]) -> dict[str, Any]:
    summary = {key: meta[key] for key in ("task", "k", "n", "seed", "best_round", "ne_gap")}
    summary["learner"] = meta.get("learner", "tabular")
    summary["best_round_record"] = best_record
    return summary


def _save_deep(result: Any, out_dir: str | Path, task: str, task_overrides: dict[str, Any]) -> Path:
    """Write a deep run (marl.deep.learners.DeepRunResult): weights, config, and tables on tabular tasks."""
    from altmarl_ros.marl.deep.nets import state_dict_arrays
    from altmarl_ros.marl.envs import TabularPopulationEnv

    out_dir = Path(out_dir)
    env, best = result.env, result.best
    meta = _meta(task, task_overrides, env.config, result.k, env.n, result.seed, result.history(), result.best_round,
                 best, "full observation")
    meta.update(learner="deep", deep=result.config.as_dict(), seconds=result.seconds,
                networks={"global_obs_dim": env.global_obs_dim, "local_feature_dim": env.local_feature_dim,
                          "num_global_actions": env.num_global_actions, "num_local_actions": env.num_local_actions})
    arrays = {**state_dict_arrays("global_net", result.global_policy.net),
              **state_dict_arrays("local_actor", result.actor), **state_dict_arrays("local_critic", result.critic)}
    if isinstance(env, TabularPopulationEnv):
        index = CountIndex(result.k, env.game.num_local_states)
        G = env.game.num_global_states
        hist = np.tile(index.all_vectors() / result.k, (G, 1))
        obs = np.concatenate([env.global_features(np.repeat(np.arange(G), index.size)), hist], axis=1)
        q = result.global_policy.q_values(obs).reshape(G, index.size, -1) / (1.0 - env.gamma)
        arrays.update(global_q=q.astype(np.float32), global_actions=np.argmax(q, axis=-1).astype(np.int16),
                      local_policy=env.tabulate_local(result.local_policy))
    return write_run(out_dir, arrays, meta, result.history(), dataclasses.asdict(best))


@dataclass
class Actors:
    """A run's policies over a PopulationEnv (what `altmarl eval` and the sweeps evaluate)."""

    env: Any  # PopulationEnv
    k: int
    global_policy: Any  # acts on observations: QNetworkPolicy, or a TabularGlobalActor
    local_policy: Any  # ActorPolicy, or a (L, G, A) table
    meta: dict[str, Any]
    learner: str


@dataclass
class TabularGlobalActor:
    """A tabular GlobalPolicy behind the observation interface of the deep code (histograms -> counts)."""

    policy: GlobalPolicy
    num_global_states: int

    @property
    def k(self) -> int:
        return self.policy.k

    @property
    def observation(self) -> str:
        return self.policy.observation

    def act(self, obs: np.ndarray) -> np.ndarray:
        global_state = np.argmax(obs[:, :self.num_global_states], axis=1)
        counts = np.rint(obs[:, self.num_global_states:] * self.policy.k).astype(np.int64)
        return self.policy.act(global_state, counts)


def _actors(run: Run) -> Actors:
    """Tabular tables behind the observation interface, or the deep networks rebuilt from their weights;
    a checkpoint from another network shape is a clear error."""
    meta, where, task = run.meta, str(run.path), run.task
    if run.learner != "deep":
        actor = TabularGlobalActor(run.global_policy, run.game.num_global_states)
        return Actors(make_env(task, meta.get("task_overrides", {})), run.k, actor, run.local_policy, meta, "tabular")
    from altmarl_ros.marl.deep.nets import ActorPolicy, QNetworkPolicy, load_state_dict_arrays

    try:
        env = make_env(task, meta.get("task_overrides", {}))
    except MemoryBudgetError as exc:
        raise MemoryBudgetError(f"{where}: {exc}", estimate=exc.estimate, budget=exc.budget) from exc
    except AltmarlError as exc:
        raise CheckpointError(f"{where} holds a task config that no longer builds: {exc}") from exc
    from altmarl_ros.marl.deep.dqn import q_network
    from altmarl_ros.marl.deep.learners import DeepConfig
    from altmarl_ros.marl.deep.ppo import actor_network

    shapes = meta.get("networks", {})
    expected = {"global_obs_dim": env.global_obs_dim, "local_feature_dim": env.local_feature_dim,
                "num_global_actions": env.num_global_actions, "num_local_actions": env.num_local_actions}
    for name, value in expected.items():
        if shapes.get(name) != value:
            raise CheckpointError(f"{where}: networks were built for {name}={shapes.get(name)}, task {task!r} "
                                  f"with this config needs {value}")
    try:
        config = DeepConfig.from_mapping(meta.get("deep"))
    except (AltmarlError, TypeError) as exc:
        raise CheckpointError(f"{where}: unreadable deep learner config ({exc})") from exc
    k = run.k
    q_net, actor_net = q_network(env, config.dqn.hidden), actor_network(env, config.ppo.hidden)
    load_state_dict_arrays("global_net", q_net, run.checkpoint.arrays, where)
    load_state_dict_arrays("local_actor", actor_net, run.checkpoint.arrays, where)
    global_policy = QNetworkPolicy(q_net, env.global_obs_dim, env.num_global_actions, k)
    local_policy = ActorPolicy(actor_net, env.local_feature_dim, env.num_local_actions, greedy=config.ppo.greedy)
    return Actors(env, k, global_policy, local_policy, meta, "deep")
