"""MCAP recording in the layout rosbag2 writes, without rosbag2: `ros2 bag play`, `ros2 bag info` and Foxglove read it.

Profile `ros2`; schemas are `ros2msg` full message definitions (the type's .msg text, then every dependency
after a line of 80 `=` and a `MSG: pkg/Type` line, in the order rosbag2's LocalMessageDefinitionSource uses);
messages are CDR bytes as rmw serialises them; channels carry `offered_qos_profiles` (rosbag2 metadata version 8
form, which every distro since Humble reads). The .msg texts come from the installed message packages.

Nothing here imports rclpy at module level; `mcap` is imported when a recorder is opened or a file is read
(`pip install mcap`, or the `ros` extra).
"""

from __future__ import annotations

import importlib.util
import re
import site
import sys
import threading
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from altmarl_ros.marl.errors import AltmarlError

# the standard message types the running system publishes (nodes/topics.py)
STANDARD_TYPES = (
    "std_msgs/msg/Int32MultiArray",
    "std_msgs/msg/Float64MultiArray",
    "std_msgs/msg/Int32",
    "std_msgs/msg/String",
    "geometry_msgs/msg/Twist",
    "nav_msgs/msg/Odometry",
    "visualization_msgs/msg/MarkerArray",
    "rosgraph_msgs/msg/Clock",
)

DELIMITER = "=" * 80 + "\n"
PROFILE = "ros2"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
METADATA_FILE = "metadata.yaml"

# the same patterns as rosbag2_cpp's local_message_definition_source.cpp
_TYPE_NAME = re.compile(r"^([a-zA-Z0-9_]+)/(?:msg/)?([a-zA-Z0-9_]+)$")
_FIELD_TYPE = re.compile(r"(?:^|\n)\s*([a-zA-Z0-9_/]+)(?:\[[^\]]*\])?\s+")
_PRIMITIVES = frozenset({"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
                         "int32", "uint32", "int64", "uint64", "string"})
_MAX_DEPTH = 50

# rmw enum values (the integers rosbag2 metadata version 8 stores)
KEEP_LAST, RELIABLE, BEST_EFFORT, VOLATILE, AUTOMATIC = 1, 1, 2, 2, 1


class RecordingError(AltmarlError):
    """A recording cannot be written or read: missing definition, bad topic, corrupt or truncated file."""


def canonical_type(type_name: str) -> str:
    """`pkg/Type` or `pkg/msg/Type` -> `pkg/msg/Type`."""
    match = _TYPE_NAME.match(type_name)
    if match is None:
        raise RecordingError(f"message type {type_name!r} is not of the form pkg/msg/Type")
    return f"{match.group(1)}/msg/{match.group(2)}"


def type_name_of(msg: Any) -> str:
    """`pkg/msg/Type` of a generated rclpy message instance or class (module `pkg.msg._type`)."""
    cls = msg if isinstance(msg, type) else type(msg)
    parts = cls.__module__.split(".")
    if len(parts) < 2 or parts[1] != "msg":
        raise RecordingError(f"{cls.__module__}.{cls.__name__} is not a generated ROS 2 message class")
    return f"{parts[0]}/msg/{cls.__name__}"


@cache
def _share_candidates(package: str) -> tuple[Path, ...]:
    """Directories that may be `share/<package>`: the ament index first, then next to the Python package."""
    candidates: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(package)))
    except (ImportError, LookupError, OSError, ValueError):
        pass  # no ament index (pip wheels without a sourced workspace): search the file system below
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        # <prefix>/lib/pythonX.Y/site-packages/<pkg> or /opt/ros/<distro>/local/lib/python3/dist-packages/<pkg>
        location = Path(next(iter(spec.submodule_search_locations)))
        candidates += [parent / "share" / package for parent in location.parents[:6]]
    prefixes = [sys.prefix, sys.base_prefix, site.getuserbase()]
    candidates += [Path(prefix) / "share" / package for prefix in prefixes]
    return tuple(dict.fromkeys(candidates))


def message_file(type_name: str) -> Path:
    """The installed `<pkg>/msg/<Type>.msg` of a type; RecordingError if no message package provides it."""
    package, _, name = canonical_type(type_name).split("/")
    candidates = _share_candidates(package)
    for share in candidates:
        path = share / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    searched = ", ".join(str(share / "msg") for share in candidates) or "(nowhere)"
    raise RecordingError(f"no message definition for {type_name}: {name}.msg not found in {searched}; "
                         f"install the {package} message package (ROS 2 apt package or ros-{package.replace('_', '-')} "
                         f"wheel) or source its workspace")


def _dependencies(text: str, package: str) -> set[str]:
    deps = set()
    for match in _FIELD_TYPE.finditer(text):
        field_type = match.group(1)
        if field_type in _PRIMITIVES:
            continue
        deps.add(field_type if "/" in field_type else f"{package}/{field_type}")
    return deps


@cache
def message_definition(type_name: str) -> str:
    """The full `ros2msg` definition of a type with its dependencies, as rosbag2 writes it into MCAP schemas."""
    root = canonical_type(type_name)
    seen: set[str] = set()

    def append(name: str, depth: int) -> str:
        if depth <= 0:
            raise RecordingError(f"message definition of {root} nests deeper than {_MAX_DEPTH} levels")
        with open(message_file(name), encoding="utf-8", newline="") as handle:
            text = handle.read()
        result = text
        for dep in sorted(_dependencies(text, name.split("/")[0])):
            if dep not in seen:
                seen.add(dep)
                result += "\n" + DELIMITER + f"MSG: {dep}\n" + append(dep, depth - 1)
        return result

    return append(root, _MAX_DEPTH)


# ---------------------------------------------------------------------------------------------- QoS metadata

def _time(nanoseconds: int) -> dict[str, int]:
    return {"sec": int(nanoseconds) // 1_000_000_000, "nsec": int(nanoseconds) % 1_000_000_000}


def default_qos(depth: int = 10, reliability: int = RELIABLE) -> dict[str, Any]:
    """An offered QoS profile (rosbag2 version 8 form): keep last `depth`, volatile, the given reliability."""
    return {"history": KEEP_LAST, "depth": depth, "reliability": reliability, "durability": VOLATILE,
            "deadline": _time(0), "lifespan": _time(0), "liveliness": AUTOMATIC,
            "liveliness_lease_duration": _time(0), "avoid_ros_namespace_conventions": False}


def qos_dict(profile: Any) -> dict[str, Any]:
    """An rclpy QoSProfile (duck-typed: history, depth, ..., durations with `.nanoseconds`) or a dict -> dict."""
    if isinstance(profile, Mapping):
        result = default_qos()
        result.update(profile)
        return result

    def duration(value: Any) -> dict[str, int]:
        return _time(getattr(value, "nanoseconds", value or 0))

    return {"history": int(profile.history), "depth": int(profile.depth), "reliability": int(profile.reliability),
            "durability": int(profile.durability), "deadline": duration(profile.deadline),
            "lifespan": duration(profile.lifespan), "liveliness": int(profile.liveliness),
            "liveliness_lease_duration": duration(profile.liveliness_lease_duration),
            "avoid_ros_namespace_conventions": bool(profile.avoid_ros_namespace_conventions)}


def qos_yaml(profiles: Iterable[Any]) -> str:
    """The `offered_qos_profiles` string: a YAML list of profiles with integer policies (metadata version 8)."""
    lines = []
    for profile in map(qos_dict, profiles):
        first = True
        for key in ("history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
                    "liveliness_lease_duration", "avoid_ros_namespace_conventions"):
            value = profile[key]
            lead = "- " if first else "  "
            first = False
            if isinstance(value, Mapping):
                lines += [f"{lead}{key}:", f"    sec: {int(value['sec'])}", f"    nsec: {int(value['nsec'])}"]
            elif isinstance(value, bool):
                lines.append(f"{lead}{key}: {'true' if value else 'false'}")
            else:
                lines.append(f"{lead}{key}: {int(value)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- writer

class McapRecorder:
    """Writes one MCAP file in the rosbag2 layout.

    `add_topic(name, type)` registers the schema (once per type) and the channel; `write(topic, msg, time_ns)`
    takes CDR bytes (e.g. from a raw subscription) or a message object (serialised with
    rclpy.serialization.serialize_message); `close()` writes the summary (and, with `bag_metadata=True`, a
    rosbag2 `metadata.yaml` next to the file so `ros2 bag play <dir>` works on every distro). Thread-safe.
    """

    def __init__(self, path: str | Path, *, chunk_size: int = 1 << 20, compression: str = "zstd",
                 bag_metadata: bool = False):
        try:
            from mcap.writer import LIBRARY_IDENTIFIER, CompressionType, Writer
        except ImportError as exc:
            raise RecordingError(f"recording needs the mcap package (pip install mcap): {exc}") from exc
        compressions = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        if compression not in compressions:
            raise RecordingError(f"compression must be one of {sorted(compressions)}, got {compression!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._bag_metadata = bag_metadata
        self._lock = threading.Lock()
        self._stream = open(self.path, "wb")  # closed in close()
        try:
            self._writer = Writer(self._stream, chunk_size=chunk_size, compression=compressions[compression])
            self._writer.start(profile=PROFILE, library=f"altmarl_ros recorder; {LIBRARY_IDENTIFIER}")
        except Exception:
            self._stream.close()
            raise
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str, str]] = {}  # topic -> (channel id, type, offered qos yaml)
        self._counts: dict[str, int] = {}
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def counts(self) -> dict[str, int]:
        """Messages written per topic so far (every added topic, zero included)."""
        with self._lock:
            return dict(self._counts)

    def has_topic(self, name: str) -> bool:
        return name in self._channels

    def add_topic(self, name: str, type_name: str, offered_qos: Iterable[Any] | None = None) -> int:
        """Register a topic (idempotent for the same type) and return its channel id.

        `offered_qos`: the publishers' QoS profiles (rclpy QoSProfile or dicts) for `offered_qos_profiles`;
        None = one default reliable, volatile, keep-last-10 profile.
        """
        type_name = canonical_type(type_name)
        if not name.startswith("/"):
            raise RecordingError(f"topic {name!r} must be a fully qualified name (start with '/')")
        with self._lock:
            self._check_open()
            if name in self._channels:
                if self._channels[name][1] != type_name:
                    raise RecordingError(f"topic {name} was added as {self._channels[name][1]}, not {type_name}")
                return self._channels[name][0]
            if type_name not in self._schemas:
                self._schemas[type_name] = self._writer.register_schema(
                    name=type_name, encoding=SCHEMA_ENCODING, data=message_definition(type_name).encode())
            qos = qos_yaml(offered_qos if offered_qos is not None else [default_qos()])
            channel_id = self._writer.register_channel(
                topic=name, message_encoding=MESSAGE_ENCODING, schema_id=self._schemas[type_name],
                metadata={"offered_qos_profiles": qos})
            self._channels[name] = (channel_id, type_name, qos)
            self._counts[name] = 0
            return channel_id

    def write(self, topic: str, msg: Any, time_ns: int, publish_time_ns: int | None = None) -> None:
        """Write one message: CDR bytes as received, or a message object (added as a topic on first use)."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            data = bytes(msg)
            if topic not in self._channels:
                raise RecordingError(f"topic {topic} has not been added; add_topic(name, type) before writing bytes")
        else:
            from rclpy.serialization import serialize_message

            self.add_topic(topic, type_name_of(msg))  # registers it, or checks the type it was added with
            data = serialize_message(msg)
        time_ns = int(time_ns)
        with self._lock:
            self._check_open()
            channel_id = self._channels[topic][0]
            self._writer.add_message(channel_id=channel_id, log_time=time_ns, data=data,
                                     publish_time=time_ns if publish_time_ns is None else int(publish_time_ns),
                                     sequence=self._counts[topic] & 0xFFFFFFFF)
            self._counts[topic] += 1
            self._first_ns = time_ns if self._first_ns is None else min(self._first_ns, time_ns)
            self._last_ns = time_ns if self._last_ns is None else max(self._last_ns, time_ns)

    def flush(self) -> None:
        """End the chunk in progress and flush it to the file (a crash then loses only later messages)."""
        with self._lock:
            if self._closed:
                return
            flush = getattr(self._writer, "flush", None)  # mcap >= 1.3
            if flush is not None:
                flush()
            else:
                self._stream.flush()

    def close(self) -> dict[str, int]:
        """Write the summary and close the file; safe to call twice. Returns the counts per topic."""
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._writer.finish()
                finally:
                    self._stream.close()
                if self._bag_metadata:
                    self._write_bag_metadata()
            return dict(self._counts)

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError(f"recording {self.path} is closed")

    def _write_bag_metadata(self) -> None:
        """rosbag2 metadata.yaml, version 5 (read by Humble and every later rosbag2, and by rosbags)."""
        import yaml

        total = sum(self._counts.values())
        start = self._first_ns if total else 0
        duration = (self._last_ns - self._first_ns) if total else 0
        topics = [{"topic_metadata": {"name": name, "type": type_name, "serialization_format": MESSAGE_ENCODING,
                                      "offered_qos_profiles": qos},
                   "message_count": self._counts[name]}
                  for name, (_, type_name, qos) in self._channels.items()]
        info = {"version": 5, "storage_identifier": "mcap", "duration": {"nanoseconds": duration},
                "starting_time": {"nanoseconds_since_epoch": start}, "message_count": total,
                "topics_with_message_count": topics, "compression_format": "", "compression_mode": "",
                "relative_file_paths": [self.path.name],
                "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                           "duration": {"nanoseconds": duration}, "message_count": total}]}
        text = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False, width=1 << 16)
        (self.path.parent / METADATA_FILE).write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------- reading

def _mcap_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.mcap"))
        if len(files) != 1:
            raise RecordingError(f"{path} holds {len(files)} .mcap files; give the file itself")
        return files[0]
    if not path.is_file():
        raise RecordingError(f"recording {path} does not exist")
    return path


def read_counts(path: str | Path) -> dict[str, int]:
    """Messages per topic in an MCAP file (or a directory holding one), read with mcap's own reader.

    Every message is read (chunk CRCs checked), so a corrupt file fails here; a file without a summary
    section (recorder killed before close) is reported as truncated.
    """
    try:
        from mcap.reader import make_reader
    except ImportError as exc:
        raise RecordingError(f"reading recordings needs the mcap package (pip install mcap): {exc}") from exc
    path = _mcap_path(path)
    counts: dict[str, int] = {}
    try:
        with open(path, "rb") as handle:
            reader = make_reader(handle, validate_crcs=True)
            summary = reader.get_summary()
            if summary is None:
                raise RecordingError(f"{path} has no summary section: truncated (the recorder did not close it)")
            for channel in summary.channels.values():
                counts.setdefault(channel.topic, 0)
            for _schema, channel, _message in reader.iter_messages(log_time_order=False):
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
    except RecordingError:
        raise
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc}") from exc
    except Exception as exc:  # any parse failure of an untrusted file (mcap, struct, zstd, lz4, ...) means corrupt
        raise RecordingError(f"{path} is not a readable MCAP file (corrupt or truncated; was the recorder "
                             f"stopped cleanly?): {type(exc).__name__}: {exc}") from exc
    return counts

