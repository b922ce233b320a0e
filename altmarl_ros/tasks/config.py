"""Task configs: dataclasses with defaults, built from keyword arguments or YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from altmarl_ros.marl.config import config_from_mapping
from altmarl_ros.marl.errors import GameValidationError

__all__ = ["config_from_mapping", "load_yaml"]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a clear error if the file is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise GameValidationError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GameValidationError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GameValidationError(
            f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data
