"""Dataclass configs built from mappings (YAML, --set, checkpoint metadata): unknown keys and wrong types are
clear errors, values are coerced to the type of the field's default."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from altmarl_ros.marl.errors import GameValidationError

ConfigT = TypeVar("ConfigT")


def config_from_mapping(cls: type[ConfigT], values: dict[str, Any] | None) -> ConfigT:
    """Build `cls` from `values`, rejecting unknown keys and coercing to the default's type."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise GameValidationError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(fields)}")
    defaults = cls()
    coerced = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        coerced[name] = _coerce(name, value, default)
    return dataclasses.replace(defaults, **coerced)


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise GameValidationError(f"{name} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise GameValidationError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GameValidationError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise GameValidationError(f"{name} must be a list, got {value!r}")
        return tuple(_coerce(name, v, default[0]) if default else v for v in value)
    return value
