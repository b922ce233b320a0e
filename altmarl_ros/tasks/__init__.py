"""Concrete games built from a config: a registry by task name.

Tabular tasks (`TASKS`) build a `TabularGame`, which both the tabular and the
deep learners train on; continuous tasks (`ENV_TASKS`) build a
`PopulationEnv` only, for the deep learners.
"""

from __future__ import annotations

from typing import Any

from altmarl_ros.marl.defaults import TASK_NAMES
from altmarl_ros.marl.envs import PopulationEnv, TabularPopulationEnv
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.tasks import federated, warehouse, zones
from altmarl_ros.tasks.config import config_from_mapping

TASKS = {"zones": (zones.ZonesConfig, zones.build_game),
         "federated": (federated.FederatedConfig, federated.build_game)}
ENV_TASKS = {"warehouse": (warehouse.WarehouseConfig, warehouse.build_env)}
ALL_TASKS = sorted({*TASKS, *ENV_TASKS})
if ALL_TASKS != sorted(TASK_NAMES):  # the parsers list marl/defaults.py's names without importing the tasks
    raise ImportError(f"registered tasks {ALL_TASKS} differ from marl/defaults.py's TASK_NAMES {sorted(TASK_NAMES)}")


def is_tabular(task: str) -> bool:
    _check_known(task)
    return task in TASKS


def _check_known(task: str) -> None:
    if task not in TASKS and task not in ENV_TASKS:
        raise GameValidationError(f"unknown task {task!r}; valid tasks: {ALL_TASKS}")


def make_game(task: str, overrides: dict[str, Any] | None = None) -> TabularGame:
    """Build the named tabular task's game from its defaults and `overrides`."""
    _check_known(task)
    if task not in TASKS:
        raise GameValidationError(f"task {task!r} has continuous states and no tabular game; "
                                  f"train it with the deep learners (--learner deep)")
    config_cls, build = TASKS[task]
    return build(config_from_mapping(config_cls, overrides))


def make_env(task: str, overrides: dict[str, Any] | None = None) -> PopulationEnv:
    """Any task as a PopulationEnv (a tabular game is wrapped; its population kept as counts)."""
    _check_known(task)
    if task in TASKS:
        return TabularPopulationEnv(make_game(task, overrides))
    config_cls, build = ENV_TASKS[task]
    return build(config_from_mapping(config_cls, overrides))
