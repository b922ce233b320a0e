"""Task configs: dataclasses with defaults, built from keyword arguments or YAML.

`config_from_mapping` here is the generic builder (types checked key by key)
plus checks across keys that a task's own validation does not make, so that no
value is silently changed: e.g. federated's drift probability
`drift_base_prob + drift_step_prob * eta`, which the game would otherwise cap
at 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from altmarl_ros.marl.config import config_from_mapping as _build
from altmarl_ros.marl.errors import GameValidationError

__all__ = ["config_from_mapping", "load_yaml"]

ConfigT = TypeVar("ConfigT")


def config_from_mapping(cls: type[ConfigT], values: dict[str, Any] | None) -> ConfigT:
    """Build `cls` from `values` (unknown keys and wrong types are errors), then run its cross-key checks."""
    config = _build(cls, values)
    for check in CROSS_CHECKS.get(cls.__name__, ()):
        check(config)
    return config


def _federated_drift_probability(config: Any) -> None:
    """P(+1 drift level) = drift_base_prob + drift_step_prob * eta must be a probability at every step size."""
    if config.calibration != "none":
        return  # "real": P_l is measured, these numbers are unused
    for eta in config.step_sizes:
        p = config.drift_base_prob + config.drift_step_prob * eta
        if np.isfinite(p) and eta > 0 and p > 1:
            raise GameValidationError(
                f"the drift probability drift_base_prob + drift_step_prob * eta is {p:.4g} > 1 at step size "
                f"{eta} (drift_base_prob {config.drift_base_prob}, drift_step_prob {config.drift_step_prob}); it must "
                "lie in [0, 1] at every step size: lower drift_base_prob or drift_step_prob")


CROSS_CHECKS: dict[str, tuple[Callable[[Any], None], ...]] = {"FederatedConfig": (_federated_drift_probability,)}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a clear error if the file is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise GameValidationError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GameValidationError(f"config file {path} is not valid YAML: {exc}") from exc
    except OSError as exc:
        raise GameValidationError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GameValidationError(
            f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data
