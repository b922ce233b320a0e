"""Records the system's topics to `<output>/run.mcap` (rosbag2 layout: `ros2 bag play <output>` and Foxglove read it).

Subscriptions are raw (`raw=True`, in rclpy since before Humble): the received CDR bytes go to the file as they
are, with no deserialise / serialise. Each message is stamped with the node clock on receipt (sim time when
`use_sim_time` is true; messages before the first /clock get time 0). A topic's channel is registered at its
first message, with the offered QoS of the publishers seen then (as `ros2 bag record` does), so playback
reproduces e.g. transient-local markers.

Parameters:
  output        directory for run.mcap and metadata.yaml (created; required)
  n             robots: the default topics include /robot_<i>/odom and /robot_<i>/cmd_vel for i < n
  link          per_robot (default) | batched: then the default topics hold each fleet's
                /altmarl/batch_<a>_<b>/{poses,cmd_vel,decisions} instead, ranges from robots_per_process
  topics        topics to record (default: the altmarl topics, /clock, /leader/{odom,cmd_vel}, robots');
                an entry is `name` (type known from nodes/topics.py, or a name ending in odom / cmd_vel)
                or `name:pkg/msg/Type`
  reliability   subscription reliability: reliable (default; matches reliable publishers only, as the nodes
                of this package use) or best_effort (matches every publisher, may drop under load)
  depth         subscription queue depth (default 100)
  flush_period  seconds between chunk flushes to disk (default 5.0; 0 = only on close)
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import rclpy.logging
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from altmarl_ros.bringup.launch_plan import robot_ranges
from altmarl_ros.nodes.common import declare, run
from altmarl_ros.nodes.params import RecorderParams
from altmarl_ros.nodes.topics import (
    GLOBAL,
    HEARTBEAT,
    LEADER,
    LINKS,
    MARKERS,
    SAMPLE_REQUEST,
    SAMPLES,
    STATS,
    batch_topic,
    robot_namespace,
)
from altmarl_ros.recording import McapRecorder, RecordingError, canonical_type, message_definition

OUTPUT_FILE = "run.mcap"
CLOCK = "/clock"

TOPIC_TYPES = {
    SAMPLE_REQUEST: "std_msgs/msg/Int32MultiArray",
    SAMPLES: "std_msgs/msg/Float64MultiArray",
    GLOBAL: "std_msgs/msg/Int32MultiArray",
    HEARTBEAT: "std_msgs/msg/Int32",
    STATS: "std_msgs/msg/String",
    MARKERS: "visualization_msgs/msg/MarkerArray",
    CLOCK: "rosgraph_msgs/msg/Clock",
}
# per-robot / leader topics, by their last name component
SUFFIX_TYPES = {"odom": "nav_msgs/msg/Odometry", "cmd_vel": "geometry_msgs/msg/Twist"}
BATCH_PREFIX = "/altmarl/batch_"
BATCH_SUFFIX_TYPES = {"poses": "geometry_msgs/msg/PoseArray", "cmd_vel": "std_msgs/msg/Float64MultiArray",
                      "decisions": "std_msgs/msg/Int32MultiArray"}
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def default_topics(n: int, batches: list[tuple[int, int]] | None = None) -> list[str]:
    topics = [*TOPIC_TYPES, f"/{LEADER}/odom", f"/{LEADER}/cmd_vel"]
    for first, last in batches or []:
        topics += [batch_topic(first, last, name) for name in BATCH_SUFFIX_TYPES]
    for i in range(n if not batches else 0):
        topics += [f"/{robot_namespace(i)}/odom", f"/{robot_namespace(i)}/cmd_vel"]
    return topics


def topic_type(spec: str) -> tuple[str, str]:
    """`name` or `name:pkg/msg/Type` -> (name, pkg/msg/Type); RecordingError when the type is unknown."""
    name, sep, type_name = spec.partition(":")  # ':' cannot occur in a ROS name
    name = name.strip()
    if not name:
        raise RecordingError(f"empty topic name in topics entry {spec!r}")
    if sep:
        return name, canonical_type(type_name.strip())
    suffixes = BATCH_SUFFIX_TYPES if name.startswith(BATCH_PREFIX) else SUFFIX_TYPES
    known = TOPIC_TYPES.get(name) or suffixes.get(name.rsplit("/", 1)[-1])
    if known is None:
        raise RecordingError(f"no known message type for topic {name!r}: give it as '{name}:pkg/msg/Type'")
    return name, known


def message_class(type_name: str) -> type:
    package, _, name = canonical_type(type_name).split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise RecordingError(f"message type {type_name} is not installed ({package}.msg.{name}): {exc}") from exc


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        try:
            self._setup()
        except Exception:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        p = declare(self, RecorderParams)
        if not p["output"]:
            raise RecordingError("parameter output is required: the directory to write run.mcap into")
        if p["n"] < 0:
            raise RecordingError(f"n must be >= 0, got {p['n']}")
        if p["reliability"] not in RELIABILITY:
            raise RecordingError(f"reliability must be one of {sorted(RELIABILITY)}, got {p['reliability']!r}")
        if p["depth"] < 1:
            raise RecordingError(f"depth must be >= 1, got {p['depth']}")
        if p["link"] not in LINKS or p["robots_per_process"] < 1:
            raise RecordingError(f"link must be one of {list(LINKS)} and robots_per_process >= 1, got "
                                 f"{p['link']!r} and {p['robots_per_process']}")
        batches = robot_ranges(p["n"], p["robots_per_process"]) if p["link"] == "batched" and p["n"] else None
        specs = self.declare_parameter("topics", default_topics(p["n"], batches),
                                       ParameterDescriptor(read_only=True)).value

        self._topics: dict[str, str] = {}  # resolved name -> type
        for spec in specs:
            name, type_name = topic_type(spec)
            try:
                resolved = self.resolve_topic_name(name)
            except RuntimeError as exc:  # rclpy's RCLError
                raise RecordingError(f"invalid topic name {name!r} in topics: {exc}") from exc
            self._topics.setdefault(resolved, type_name)
        classes = {type_name: message_class(type_name) for type_name in set(self._topics.values())}
        for type_name in classes:
            message_definition(type_name)  # fail now, not at the first message, if a .msg file is missing

        if p["max_message_bytes"] < 1:
            raise RecordingError(f"max_message_bytes must be >= 1, got {p['max_message_bytes']}")
        self._max_bytes = p["max_message_bytes"]
        self.oversized = 0
        self._flush_period = float(p["flush_period"])
        self._last_flush = time.monotonic()
        self.path = str(Path(p["output"]) / OUTPUT_FILE)
        self._recorder = McapRecorder(self.path, bag_metadata=True)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p["depth"], reliability=RELIABILITY[p["reliability"]])
        try:
            for topic, type_name in self._topics.items():
                self.create_subscription(classes[type_name], topic, self._callback(topic, type_name), qos, raw=True)
        except Exception:
            self._recorder.close()
            raise
        self.get_logger().info(f"recording {len(self._topics)} topics to {self.path}")

    def _callback(self, topic: str, type_name: str):
        def on_message(data: bytes) -> None:
            self.record(topic, type_name, data)

        return on_message

    def record(self, topic: str, type_name: str, data: bytes) -> None:
        """Write one received message (CDR bytes), registering its channel at the first one."""
        if self._recorder.closed:
            return
        if len(data) > self._max_bytes:  # a buggy or hostile publisher must not fill the disk in a few messages
            self.oversized += 1
            self.get_logger().warning(f"dropped a {len(data)}-byte message on {topic} (max_message_bytes "
                                      f"{self._max_bytes}; {self.oversized} dropped so far)", throttle_duration_sec=5.0)
            return
        if not self._recorder.has_topic(topic):
            self._recorder.add_topic(topic, type_name, self._offered_qos(topic))
        self._recorder.write(topic, data, self.get_clock().now().nanoseconds)
        if self._flush_period > 0 and time.monotonic() - self._last_flush >= self._flush_period:
            self._recorder.flush()
            self._last_flush = time.monotonic()

    def _offered_qos(self, topic: str) -> list | None:
        try:
            profiles = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
        except RuntimeError:  # graph query failed (context shutting down): default profile
            return None
        return profiles or None

    @property
    def counts(self) -> dict[str, int]:
        written = self._recorder.counts
        return {topic: written.get(topic, 0) for topic in self._topics}

    def close(self) -> None:
        """Write the summary and metadata.yaml; log the messages written per topic. Safe to call twice."""
        if self._recorder.closed:
            return
        self._recorder.close()
        counts = self.counts
        # after Ctrl-C the context is already shut down and the node logger's /rosout publisher is invalid:
        # log to the console under a child name then (rosout only publishes for node loggers)
        logger = self.get_logger() if self.context.ok() else rclpy.logging.get_logger(f"{self.get_name()}.close")
        recorded = {topic: count for topic, count in counts.items() if count}
        logger.info(f"wrote {sum(counts.values())} messages on {len(recorded)} of {len(counts)} topics "
                    f"to {self.path}")
        for topic, count in recorded.items():
            logger.info(f"  {topic}: {count}")
        silent = [topic for topic, count in counts.items() if not count]
        if silent:
            logger.info(f"  no messages on: {', '.join(silent)}")


def main(args: list[str] | None = None) -> int:
    return run(lambda: [RecorderNode()], args)


if __name__ == "__main__":
    sys.exit(main())
