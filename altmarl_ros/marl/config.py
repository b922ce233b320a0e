"""Dataclass configs built from mappings (YAML, --set, checkpoint metadata): unknown keys and wrong types are
clear errors, values are coerced to the field's declared type (or, without one, to its default's type).

A YAML file is typed loosely (`rounds: "3"` is a string, `certify: "no"` is a
non-empty string, `.nan` is a float), so every value is checked against its
field rather than passed through: a wrong type is an error that names the key,
what was given and what is valid. Floats must be finite.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, TypeVar, Union

from altmarl_ros.marl.errors import GameValidationError

ConfigT = TypeVar("ConfigT")


def config_from_mapping(cls: type[ConfigT], values: dict[str, Any] | None) -> ConfigT:
    """Build `cls` from `values`, rejecting unknown keys and values of the wrong type."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise GameValidationError(f"{cls.__name__} settings must be a mapping of keys to values, got "
                                  f"{type(values).__name__} {values!r}")
    values = dict(values)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    bad_keys = sorted(repr(key) for key in values if not isinstance(key, str))
    if bad_keys:
        raise GameValidationError(f"{cls.__name__} keys must be names, got {bad_keys}; valid keys: {sorted(fields)}")
    derived = getattr(cls, "DERIVED_KEYS", {})  # values the class reads from elsewhere (e.g. a URDF)
    set_derived = sorted(set(values) & set(derived))
    if set_derived:
        key = set_derived[0]
        raise GameValidationError(f"{cls.__name__} key {key!r} cannot be set: it is {derived[key]}; remove it "
                                  f"(valid keys: {sorted(fields)})")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise GameValidationError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(fields)}")
    hints = _type_hints(cls)
    defaults = cls()
    coerced = {}
    for name, value in values.items():
        coerced[name] = _coerce(name, value, getattr(defaults, name), hints.get(name))
    return dataclasses.replace(defaults, **coerced)


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # an unresolvable annotation: fall back to the defaults' types
        return {}


_SCALARS = (bool, int, float, str)


def _coerce(name: str, value: Any, default: Any, hint: Any = None) -> Any:
    kind, optional, element = _kind(default, hint)
    if value is None:
        if optional:
            return None
        if kind is not None:
            raise GameValidationError(f"{name} must be {_describe(kind, element)}, got nothing (null)")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise GameValidationError(f"{name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value) or int(value) != value:
            raise GameValidationError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GameValidationError(f"{name} must be a number, got {value!r}")
        if not _finite(value):
            raise GameValidationError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise GameValidationError(f"{name} must be a string, got {value!r}")
        return value
    if kind is tuple:
        if not isinstance(value, (list, tuple)):
            raise GameValidationError(f"{name} must be a list, got {value!r}")
        if element is None:
            return tuple(value)
        return tuple(_coerce(name, v, None, element) for v in value)
    return value


def _kind(default: Any, hint: Any) -> tuple[type | None, bool, Any]:
    """(scalar type or tuple, whether None is allowed, element hint of a tuple) from a hint or the default."""
    optional = False
    if hint is not None:
        origin = typing.get_origin(hint)
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else None
            origin = typing.get_origin(hint)
        if hint in _SCALARS:
            return hint, optional, None
        if origin is tuple:
            args = typing.get_args(hint)
            return tuple, optional, args[0] if args and args[0] in _SCALARS else None
    if isinstance(default, bool):
        return bool, optional, None
    for scalar in (int, float, str):
        if isinstance(default, scalar):
            return scalar, optional, None
    if isinstance(default, tuple):
        element = type(default[0]) if default and type(default[0]) in _SCALARS else None
        return tuple, optional, element
    return None, True, None


def _describe(kind: type, element: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind is tuple:
        return "a list" + (f" of {names[element].removeprefix('an ').removeprefix('a ')}s" if element else "")
    return names.get(kind, kind.__name__)


def _finite(value: int | float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


_SIZE_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")
SIZE_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
              "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_size(text: str) -> int:
    """Bytes from `8GiB`, `500MB`, `1.5 GB` or a plain count of bytes; ValueError (saying what is valid) if not."""
    match = _SIZE_RE.match(str(text))
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"expected a size like 8GiB, 500MB or 1000000 (bytes; units B, kB, MB, GB, TB, KiB, MiB, "
                         f"GiB, TiB), got {text!r}")
    number = match["number"]
    size = int(number) * SIZE_UNITS[unit] if "." not in number else int(float(number) * SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"a size must be at least 1 byte, got {text!r}")
    return size
