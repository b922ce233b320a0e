"""Glue between a training run and its files: save an alternation result, load trained policies.

The nodes, `altmarl eval` and `altmarl sweep` all load policies through
`load_trained`, which rebuilds the game from the stored task config and checks
every array against it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from altmarl_ros.marl.alternation import AlternationResult
from altmarl_ros.marl.checkpoint import CHECKPOINT_NAME, load_checkpoint, resolve_path, save_checkpoint
from altmarl_ros.marl.counts import CountIndex
from altmarl_ros.marl.errors import AltmarlError, CheckpointError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.policies import GlobalPolicy, check_local_policy
from altmarl_ros.tasks import make_game

HISTORY_NAME = "history.csv"
SUMMARY_NAME = "summary.json"


@dataclass
class TrainedPolicies:
    game: TabularGame
    k: int
    global_q: np.ndarray
    global_policy: GlobalPolicy
    local_policy: np.ndarray
    meta: dict[str, Any]


def save_result(result: AlternationResult, out_dir: str | Path, task: str, task_overrides: dict[str, Any]) -> Path:
    """Write checkpoint.npz, history.csv (one row per round) and summary.json into `out_dir`."""
    out_dir = Path(out_dir)
    best = result.best
    meta = {
        "task": task,
        "task_overrides": task_overrides,
        "task_config": result.game.config,
        "k": result.k,
        "n": result.game.n,
        "seed": result.seed,
        "alternation": dataclasses.asdict(result.config),
        "best_round": result.best_round,
        "ne_gap": {"global": best.global_gap, "global_ci95": best.global_gap_ci95, "local": best.local_gap,
                   "local_worst_state": best.local_gap_worst_state, "k_ref": result.config.reference_k(result.game),
                   "epsilon": max(best.global_gap, best.local_gap)},
        "history": result.history(),
    }
    path = save_checkpoint(out_dir / CHECKPOINT_NAME, {
        "global_q": result.global_q.astype(np.float32),
        "global_actions": result.global_policy.actions.astype(np.int16),
        "local_policy": result.local_policy,
        "local_q": result.local_q,
    }, meta)
    with open(out_dir / HISTORY_NAME, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result.history()[0]))
        writer.writeheader()
        writer.writerows(result.history())
    summary = {key: meta[key] for key in ("task", "k", "n", "seed", "best_round", "ne_gap")}
    summary["best_round_record"] = dataclasses.asdict(best)
    (out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
    return path


def load_trained(path: str | Path, expect_task: str | None = None, expect_zones: int | None = None) -> TrainedPolicies:
    """Load a checkpoint and check it against the game its config describes."""
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    where = resolve_path(path)
    task = meta.get("task")
    if expect_task is not None and task != expect_task:
        raise CheckpointError(f"{where} was trained on task {task!r}, expected {expect_task!r}")
    try:
        game = make_game(task, meta.get("task_overrides", {}))
    except AltmarlError as exc:
        raise CheckpointError(f"{where} holds a task config that no longer builds: {exc}") from exc
    if expect_zones is not None and game.num_local_states != expect_zones:
        raise CheckpointError(
            f"{where} is a policy for {game.num_local_states} zones, but this system has {expect_zones} zones")
    k = int(meta.get("k", 0))
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
    global_policy = GlobalPolicy(k, game.num_local_states, checkpoint.array("global_actions"))
    return TrainedPolicies(game, k, checkpoint.array("global_q"), global_policy, local_policy, meta)
