"""Checkpoints: one `.npz` file holding policies, Q tables, config, seed, versions and the NE gap.

Layout: named arrays plus `__meta__`, a UTF-8 JSON document stored as a byte
array. The metadata carries a schema version and a SHA-256 of every array, so
a truncated, corrupt or hand-edited file is refused with a clear error rather
than loaded half-right. Nothing is pickled (np.load with allow_pickle=False).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from altmarl_ros import __version__
from altmarl_ros.marl.errors import CheckpointError

SCHEMA_VERSION = 1
FORMAT = "altmarl-checkpoint"
META_KEY = "__meta__"
CHECKPOINT_NAME = "checkpoint.npz"


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise CheckpointError(f"checkpoint has no array {name!r}; it holds {sorted(self.arrays)}")
        return self.arrays[name]


def _digest(array: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    import scipy

    return {"altmarl_ros": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def resolve_path(path: str | Path) -> Path:
    """A run directory means its checkpoint.npz; a file path is used as is."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    for name, value in arrays.items():
        if value.dtype == object:
            raise CheckpointError(f"array {name!r} has dtype object; checkpoints hold numeric arrays only")
    full_meta = {**meta, "format": FORMAT, "schema_version": SCHEMA_VERSION, "versions": versions(),
                 "arrays": {name: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": _digest(v)}
                            for name, v in arrays.items()}}
    encoded = np.frombuffer(json.dumps(full_meta, indent=1, default=_json_default).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays, **{META_KEY: encoded})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint; every failure is a CheckpointError that names the file."""
    path = resolve_path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: pass a run directory or a .npz written by `altmarl train`")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read as a checkpoint ({exc})") from exc
    if META_KEY not in contents:
        raise CheckpointError(f"{path} is a .npz file but not an altmarl checkpoint (no {META_KEY} entry)")
    try:
        meta = json.loads(contents.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has unreadable metadata ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has schema version {meta.get('schema_version')}, this altmarl_ros reads version {SCHEMA_VERSION}")
    expected = meta.get("arrays", {})
    missing = sorted(set(expected) - set(contents))
    if missing:
        raise CheckpointError(f"{path} is missing arrays {missing}")
    for name, info in expected.items():
        if _digest(contents[name]) != info["sha256"]:
            raise CheckpointError(
                f"{path}: array {name!r} does not match its recorded checksum (file altered or corrupt)")
    return Checkpoint(contents, meta)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")
