"""Checkpoints: one `.npz` file holding policies, Q tables, config, seed, versions and the NE gap.

Layout: named arrays plus `__meta__`, a UTF-8 JSON document stored as a byte
array; the file stays an ordinary `.npz` (np.load(path, allow_pickle=False)
reads it). Nothing is pickled.

Verification (schema 2): the metadata lists every array (`arrays`: dtype,
shape, SHA-256 of dtype + shape + bytes) and carries `digest`, a SHA-256 of
the canonical JSON of the rest of the metadata. The digest therefore covers
the metadata and, through the listed per-array checksums, every array's name,
dtype, shape and bytes. Loading requires the digest and the list; the zip's
central directory is read first, and members the list does not name, or whose
declared size (zip entry or `.npy` header) exceeds a bound, are refused before
anything is decompressed. Every failure is a `CheckpointError` naming the file.
Schema 1 files (per-array checksums, no digest) are still read: their arrays
are verified, a warning says their metadata is not covered.

Writing is atomic (a temporary sibling renamed into place) with the user's
umask. Temporaries are named `.<name>.altmarl-tmp-<pid>-<token>` and locked
(flock) while written, so a later save in the same directory removes the ones a
crashed or killed process left behind, and never one still being written.
`atomic_directory` does the same for a whole directory (a run: checkpoint,
summary, history), swapping it in with one rename.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import stat
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from altmarl_ros import __version__
from altmarl_ros.marl.config import parse_size
from altmarl_ros.marl.defaults import MEMORY_BUDGET_ENV
from altmarl_ros.marl.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: temporaries are judged by age alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
FORMAT = "altmarl-checkpoint"
META_KEY = "__meta__"
DIGEST_KEY = "digest"
CHECKPOINT_NAME = "checkpoint.npz"
# metadata keys save_checkpoint writes itself (a caller's values for them are replaced)
RESERVED_KEYS = ("format", "schema_version", "versions", "arrays", DIGEST_KEY)

MAX_META_BYTES = 64 * 2 ** 20  # the JSON metadata (history of every round included) is far below this
DEFAULT_MAX_ARRAY_BYTES = 16 * 2 ** 30  # all arrays together, uncompressed; ALTMARL_MEMORY_BUDGET lowers it
MAX_MEMBERS = 10_000

TEMP_MARK = ".altmarl-"
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.altmarl-(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<token>[0-9a-f]{12})$")
STALE_AFTER_S = 60.0  # an unlocked temporary this old is a crashed writer's (the lock is taken right after create)
_ARRAY_SUFFIX = ".npy"
_MAX_HEADER_BYTES = 2 ** 16  # a .npy header is at most 10000 bytes (numpy's own read limit)


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise CheckpointError(f"checkpoint has no array {name!r}; it holds {sorted(self.arrays)}")
        return self.arrays[name]


# --- digests --------------------------------------------------------------------------------

def _digest(array: np.ndarray) -> str:
    """Per-array checksum (dtype, shape, bytes); the form schema 1 already used."""
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def canonical_meta(meta: dict[str, Any]) -> bytes:
    """The bytes the digest is taken over: sorted-key compact JSON of the metadata without its digest."""
    body = {key: value for key, value in meta.items() if key != DIGEST_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default).encode()


def meta_digest(meta: dict[str, Any]) -> str:
    """`sha256:<hex>` over the canonical metadata; with the per-array checksums it lists, it covers the file."""
    return "sha256:" + hashlib.sha256(b"altmarl-checkpoint-digest\0" + canonical_meta(meta)).hexdigest()


def versions() -> dict[str, str]:
    import scipy

    return {"altmarl_ros": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def resolve_path(path: str | Path) -> Path:
    """A run directory means its checkpoint.npz; a file path is used as is."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


# --- saving ---------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves a half file."""
    path = Path(path)
    arrays, encoded = _prepare(arrays, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        np.savez_compressed(handle, **arrays, **{META_KEY: encoded})
    return path


def write_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write a checkpoint straight to `path` (inside a private staging directory: see atomic_directory)."""
    path = Path(path)
    arrays, encoded = _prepare(arrays, meta)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    with os.fdopen(fd, "wb") as handle:
        np.savez_compressed(handle, **arrays, **{META_KEY: encoded})
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _prepare(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Check the arrays, build the full metadata with its digest, encode it as the `__meta__` byte array."""
    arrays = {str(name): np.asarray(value) for name, value in arrays.items()}
    for name, value in arrays.items():
        if value.dtype.hasobject:
            raise CheckpointError(f"array {name!r} has dtype object; checkpoints hold numeric arrays only")
        if value.dtype.kind not in "biufc":
            raise CheckpointError(f"array {name!r} has dtype {value.dtype}; checkpoints hold numeric or boolean "
                                  "arrays only")
        if name == META_KEY or not name or name.endswith("/"):
            raise CheckpointError(f"{name!r} cannot name a checkpoint array")
    full_meta = {key: value for key, value in meta.items() if key not in RESERVED_KEYS}
    full_meta.update(format=FORMAT, schema_version=SCHEMA_VERSION, versions=versions(),
                     arrays={name: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": _digest(v)}
                             for name, v in arrays.items()})
    # the digest is taken over what a reader will parse back (tuples become lists, numpy scalars numbers)
    stored = json.loads(json.dumps(full_meta, default=_json_default))
    stored[DIGEST_KEY] = meta_digest(stored)
    encoded = np.frombuffer(json.dumps(stored, indent=1).encode(), dtype=np.uint8)
    if encoded.nbytes > MAX_META_BYTES:
        raise CheckpointError(f"checkpoint metadata is {encoded.nbytes} bytes; at most {MAX_META_BYTES} are read back")
    return arrays, encoded


# --- loading --------------------------------------------------------------------------------

_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
                IndexError, TypeError, OverflowError, NotImplementedError, RuntimeError, MemoryError)


def array_limit() -> int:
    """Bytes all arrays of one checkpoint may take uncompressed: 16 GiB, or ALTMARL_MEMORY_BUDGET if lower."""
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if text:
        try:
            return min(DEFAULT_MAX_ARRAY_BYTES, parse_size(text))
        except ValueError:
            pass  # the memory-budget checks report a malformed budget; the default bound still holds here
    return DEFAULT_MAX_ARRAY_BYTES


def load_checkpoint(path: str | Path, max_bytes: int | None = None) -> Checkpoint:
    """Read and verify a checkpoint; every failure is a CheckpointError that names the file."""
    given = Path(path)
    path = resolve_path(given)
    if not path.exists():
        # a save killed while its run directory was moved aside (systems without RENAME_EXCHANGE): put it back
        run_dir = given.parent if given.name == CHECKPOINT_NAME else given
        if run_dir.suffix != ".npz":
            with contextlib.suppress(OSError):
                if recover_directory(Path(os.path.realpath(run_dir))):
                    path = resolve_path(given)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: pass a run directory or a .npz written by `altmarl train`")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file; a checkpoint is a .npz written by `altmarl train`")
    limit = array_limit() if max_bytes is None else int(max_bytes)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
            if magic == b"\x93NUMPY":
                raise CheckpointError(f"{path} is a single .npy array, not a checkpoint (a .npz archive written by "
                                      "`altmarl train`)")
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                return _read_archive(path, archive, limit)
    except CheckpointError:
        raise
    except _READ_ERRORS as exc:
        raise CheckpointError(f"{path} is corrupt or truncated and cannot be read as a checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc


def _read_archive(path: Path, archive: zipfile.ZipFile, limit: int) -> Checkpoint:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise CheckpointError(f"{path} holds {len(infos)} zip members; a checkpoint has at most {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in members:
            raise CheckpointError(f"{path} holds the zip member {info.filename!r} twice (file altered or corrupt)")
        members[info.filename] = info
    meta_info = members.get(META_KEY + _ARRAY_SUFFIX)
    if meta_info is None:
        raise CheckpointError(f"{path} is a .npz file but not an altmarl checkpoint (no {META_KEY} entry)")
    raw = _read_member(path, archive, meta_info, META_KEY, MAX_META_BYTES, dtype=np.dtype(np.uint8))
    if raw.ndim != 1:
        raise CheckpointError(f"{path}: {META_KEY} must be a 1-D byte array, got shape {raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} has unreadable metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has metadata of the wrong type: a JSON {type(meta).__name__}, where a "
                              "checkpoint holds a JSON object")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    schema = meta.get("schema_version")
    if isinstance(schema, bool) or schema not in READABLE_SCHEMAS:
        raise CheckpointError(f"{path} has schema version {schema}, this altmarl_ros reads versions "
                              f"{list(READABLE_SCHEMAS)}")
    if schema >= 2:
        stored = meta.get(DIGEST_KEY)
        if not isinstance(stored, str):
            raise CheckpointError(f"{path} has no digest in its metadata; every schema-{schema} checkpoint is "
                                  "written with one (file altered or corrupt)")
        if stored != meta_digest(meta):
            raise CheckpointError(f"{path}: metadata does not match its digest (file altered or corrupt)")
    listing = _array_listing(path, meta)
    expected = {name + _ARRAY_SUFFIX: name for name in listing}
    unlisted = sorted(set(members) - set(expected) - {meta_info.filename})
    if unlisted:
        raise CheckpointError(f"{path} holds zip members its metadata does not list: {unlisted[:5]}; refusing to read "
                              "them (file altered or corrupt)")
    missing = sorted(name for member, name in expected.items() if member not in members)
    if missing:
        raise CheckpointError(f"{path} is missing arrays {missing}")
    declared = sum(math.prod(info["shape"]) * info["dtype"].itemsize for info in listing.values())
    if declared > limit:
        raise CheckpointError(f"{path}: its arrays take {declared} bytes uncompressed by their metadata; the limit is "
                              f"{_limit_text(limit)}")
    arrays = {}
    for member, name in expected.items():
        info = listing[name]
        array = _read_member(path, archive, members[member], name, limit, dtype=info["dtype"], shape=info["shape"])
        if _digest(array) != info["sha256"]:
            raise CheckpointError(
                f"{path}: array {name!r} does not match its recorded checksum (file altered or corrupt)")
        arrays[name] = array
    if schema < 2:
        log.warning("%s is a schema-1 checkpoint from an older altmarl_ros: its arrays match their checksums, but "
                    "its metadata is not covered by a digest (checkpoints written now are schema %d, with one)", path,
                    SCHEMA_VERSION)
    return Checkpoint(arrays, meta)


def _array_listing(path: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metadata's list of arrays, checked entry by entry: without it nothing could be verified."""
    listing = meta.get("arrays")
    if not isinstance(listing, dict):
        raise CheckpointError(f"{path} has no list of its arrays in the metadata (`arrays`); a checkpoint without "
                              "one cannot be verified (file altered or corrupt)")
    checked = {}
    for name, info in listing.items():
        ok = (isinstance(info, dict) and isinstance(info.get("dtype"), str) and isinstance(info.get("sha256"), str)
              and isinstance(info.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in info["shape"]))
        if not ok or name == META_KEY:
            raise CheckpointError(f"{path}: metadata entry for array {name!r} is malformed: {info!r}; each needs "
                                  "shape (list of ints >= 0), dtype and sha256")
        try:
            dtype = np.dtype(info["dtype"])
        except TypeError as exc:
            raise CheckpointError(f"{path}: array {name!r} has unknown dtype {info['dtype']!r}") from exc
        if dtype.kind not in "biufc":
            raise CheckpointError(f"{path}: array {name!r} has dtype {dtype}; checkpoints hold numeric arrays only")
        checked[name] = {"dtype": dtype, "shape": tuple(info["shape"]), "sha256": info["sha256"]}
    return checked


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limit: int,
                 dtype: np.dtype | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """One `.npy` member, its sizes checked against `limit` and its header against the listing before reading."""
    if info.is_dir() or info.flag_bits & 0x1:
        raise CheckpointError(f"{path}: zip member {info.filename!r} is a directory or encrypted")
    if info.file_size > limit + _MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: array {name!r} declares {info.file_size} bytes uncompressed; the limit is "
                              f"{_limit_text(limit)}")
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            header_shape, fortran, header_dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            header_shape, fortran, header_dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise CheckpointError(f"{path}: array {name!r} has .npy format version {version}; numeric arrays are "
                                  "stored as version 1.0 or 2.0")
        if header_dtype.hasobject:
            raise CheckpointError(f"{path}: array {name!r} holds Python objects; checkpoints are never unpickled")
        if dtype is not None and header_dtype != dtype:
            raise CheckpointError(f"{path}: array {name!r} is stored as {header_dtype}, expected {dtype}")
        if shape is not None and tuple(header_shape) != tuple(shape):
            raise CheckpointError(f"{path}: array {name!r} is stored with shape {tuple(header_shape)}, its metadata "
                                  f"lists {tuple(shape)}")
        count = math.prod(int(d) for d in header_shape)
        nbytes = count * header_dtype.itemsize
        if nbytes > limit:
            raise CheckpointError(f"{path}: array {name!r} has a header that claims {nbytes} bytes "
                                  f"(shape {tuple(header_shape)}, {header_dtype}); the limit is {_limit_text(limit)}")
        if info.file_size - nbytes != handle.tell():
            raise CheckpointError(f"{path}: array {name!r} holds {info.file_size} bytes, but its header describes "
                                  f"{nbytes} bytes of data (file altered or corrupt)")
        flat = np.empty(count, dtype=header_dtype)
        if nbytes:
            view = memoryview(flat.view(np.uint8))
            filled = 0
            while filled < nbytes:
                got = handle.readinto(view[filled:])
                if not got:
                    raise CheckpointError(f"{path}: array {name!r} ends after {filled} of {nbytes} bytes (truncated)")
                filled += got
        if handle.read(1):  # reaching the end also makes zipfile check the member's CRC-32
            raise CheckpointError(f"{path}: array {name!r} has bytes after its data (file altered or corrupt)")
    return flat.reshape(header_shape, order="F" if fortran else "C")


def _limit_text(limit: int) -> str:
    source = f"{MEMORY_BUDGET_ENV}" if limit < DEFAULT_MAX_ARRAY_BYTES else "the default bound"
    return f"{limit} bytes ({limit / 2 ** 30:.3g} GiB, {source})"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


# --- atomic files and directories -----------------------------------------------------------

def temp_name(target: Path, kind: str = "tmp") -> Path:
    """A sibling of `target` in the project's own temporary pattern: `.<name>.altmarl-<kind>-<pid>-<token>`."""
    return target.parent / f".{target.name}{TEMP_MARK}{kind}-{os.getpid()}-{secrets.token_hex(6)}"


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of this project's temporaries (what clean_stale_temporaries may remove)."""
    return _TEMP_RE.match(name) is not None


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a handle on a locked temporary sibling; on success it replaces `path` in one rename.

    The file is created with mode 0o666 and so gets the user's umask; on any
    failure (or an exception in the block) the temporary is removed and `path`
    keeps its old contents.
    """
    path = Path(path)
    clean_stale_temporaries(path.parent)
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        _lock(fd)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as handle:
            fd = -1
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            _fault("file written")
            os.replace(tmp, path)
            _fault("file renamed")
        _fsync_dir(path.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace a text file atomically (see atomic_file)."""
    with atomic_file(path, "w") as handle:
        handle.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(target: str | Path, replaces: Collection[str]) -> Iterator[Path]:
    """Yield a private staging directory; on success it becomes `target`, so `target` always holds either
    its old contents or the complete new ones, even when the process is killed at any point.

    The names in `replaces` are the ones the new contents replace; any other
    entry of an existing `target` is carried over (hard-linked, so nothing is
    copied or lost). The swap is one `renameat2(RENAME_EXCHANGE)` on Linux; where
    that is unsupported, the old directory is renamed aside first and put back by
    the next save if the process dies in between.
    """
    target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(target)
    clean_stale_temporaries(target.parent)
    staging = temp_name(target)
    os.mkdir(staging, 0o777)
    if target.is_dir():  # a replaced directory keeps its permissions; a new one gets the umask
        os.chmod(staging, stat.S_IMODE(target.stat().st_mode))
    fd = os.open(staging, os.O_RDONLY)
    try:
        _lock(fd)
        yield staging
        _fsync_dir(staging)
        _fault("staging written")
        _install(staging, target, set(replaces))
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _install(staging: Path, target: Path, replaces: set[str]) -> None:
    if not os.path.lexists(target):
        try:
            os.rename(staging, target)
            _fault("installed")
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if not target.is_dir():
        raise CheckpointError(f"{target} exists and is not a directory; a run is written as a directory")
    try:
        os.rename(staging, target)  # replaces an empty directory in one step
        _fault("installed")
        return
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    _carry_over(target, staging, replaces)
    _fault("carried over")
    if exchange(staging, target):
        _fault("exchanged")
        shutil.rmtree(staging, ignore_errors=True)  # now the old contents
        return
    aside = temp_name(target, "old")
    os.rename(target, aside)
    _fault("moved aside")
    os.rename(staging, target)
    _fault("installed")
    shutil.rmtree(aside, ignore_errors=True)


def _carry_over(old: Path, new: Path, replaces: set[str]) -> None:
    """Hard-link every entry of `old` that the new contents do not replace into `new` (a copy if links fail)."""
    for entry in os.scandir(old):
        if entry.name in replaces or is_temp_name(entry.name) or os.path.lexists(new / entry.name):
            continue
        destination = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), destination)
        elif entry.is_dir():
            shutil.copytree(entry.path, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, destination)


def _link_or_copy(source: str, destination: str | Path) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.lru_cache(maxsize=1)
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def recover_directory(target: Path) -> bool:
    """Put back a directory a killed save had moved aside (the fallback without RENAME_EXCHANGE)."""
    if os.path.lexists(target) or not target.parent.is_dir():
        return False
    prefix = f".{target.name}{TEMP_MARK}old-"
    aside = sorted((entry for entry in os.scandir(target.parent)
                    if entry.name.startswith(prefix) and is_temp_name(entry.name)
                    and entry.is_dir(follow_symlinks=False)),
                   key=lambda entry: entry.stat(follow_symlinks=False).st_mtime)
    if not aside:
        return False
    os.rename(aside[-1].path, target)
    log.warning("restored %s from %s, left by a save that was killed", target, aside[-1].name)
    return True


def clean_stale_temporaries(directory: str | Path, older_than: float = STALE_AFTER_S) -> list[str]:
    """Remove this project's temporaries in `directory` that no live writer holds; return their names.

    Only names of the pattern `.<name>.altmarl-tmp|old-<pid>-<token>` are
    considered, only ones older than `older_than` seconds (the lock is taken
    right after creation), and only ones whose flock can be taken (a writer that
    died, even by SIGKILL, no longer holds it). A moved-aside `old` directory is
    kept while its target is missing (recover_directory puts it back).
    """
    directory = Path(directory)
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or entry.is_symlink():
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            if match["kind"] == "old" and not os.path.lexists(directory / match["target"]):
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            try:
                _lock(fd)
            except BlockingIOError:
                continue  # a live writer holds it
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError as exc:
            log.debug("could not remove stale temporary %s: %s", entry.path, exc)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d stale temporary file(s) in %s left by an interrupted save: %s", len(removed), directory,
                 removed)
    return removed


def probe_writable(directory: str | Path) -> None:
    """Create, write and remove a temporary in `directory` (created with its parents); OSError if that fails."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    probe = temp_name(directory / "probe")
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, b"altmarl write probe\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(probe)


# test hook: called at every step of a save where a kill would leave a different state on disk
_fault_hook: Callable[[str], None] | None = None


def _fault(step: str) -> None:
    if _fault_hook is not None:
        _fault_hook(step)

