"""Concrete games built from a config: a registry by task name."""

from __future__ import annotations

from typing import Any

from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.tasks import federated, zones
from altmarl_ros.tasks.config import config_from_mapping

TASKS = {"zones": (zones.ZonesConfig, zones.build_game),
         "federated": (federated.FederatedConfig, federated.build_game)}


def make_game(task: str, overrides: dict[str, Any] | None = None) -> TabularGame:
    """Build the named task's game from its defaults and `overrides`."""
    if task not in TASKS:
        raise GameValidationError(f"unknown task {task!r}; valid tasks: {sorted(TASKS)}")
    config_cls, build = TASKS[task]
    return build(config_from_mapping(config_cls, overrides))
