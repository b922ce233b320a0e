"""MCAP recording: McapRecorder read back by independent readers, the recorder node on loopback, bad files.

The readers are mcap's own (`mcap.reader`, `mcap_ros2`) and rosbags' AnyReader: both build their decoders from
the message definitions stored in the file, so a malformed definition fails here. The node test runs the
recorder as a process (its own ROS_DOMAIN_ID, DDS on localhost), publishes from this process, stops it with
SIGINT as `ros2 launch` does, and reads the file back.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("mcap")
pytest.importorskip("mcap_ros2")
pytest.importorskip("rosbags")

from geometry_msgs.msg import Twist  # noqa: E402
from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray, String  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from altmarl_ros.nodes.recorder_node import RecorderNode, default_topics, topic_type  # noqa: E402
from altmarl_ros.recording import (  # noqa: E402
    DELIMITER,
    STANDARD_TYPES,
    McapRecorder,
    RecordingError,
    message_definition,
    message_file,
    read_counts,
)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000  # ns
COUNT = 3  # messages per topic in the writer test


def _messages(i: int) -> dict[str, object]:
    """One message of every standard type, with field values that depend on i."""
    twist = Twist()
    twist.linear.x, twist.angular.z = 0.25 + i, -0.5 * i
    odom = Odometry()
    odom.header.frame_id, odom.child_frame_id = "world", f"robot_{i}"
    odom.header.stamp.sec = 10 + i
    odom.pose.pose.position.x, odom.pose.pose.orientation.w = 1.5 * i, 1.0
    odom.twist.twist.linear.x = 0.1 * i
    marker = Marker(ns="zones", id=i, type=Marker.CYLINDER, text=f"zone {i}")
    marker.pose.position.y = 2.0 + i
    clock = Clock()
    clock.clock.sec, clock.clock.nanosec = 100 + i, 5
    return {
        "/altmarl/sample_request": Int32MultiArray(data=[i, 3, 7]),
        "/altmarl/samples": Float64MultiArray(data=[float(i), 3.0, 1.0, 0.5, -0.25]),
        "/altmarl/global": Int32MultiArray(data=[i, 2, 1]),
        "/altmarl/heartbeat": Int32(data=40 + i),
        "/altmarl/stats": String(data=f'{{"step": {i}}}'),
        "/altmarl/markers": MarkerArray(markers=[marker]),
        "/robot_0/cmd_vel": twist,
        "/robot_0/odom": odom,
        "/clock": clock,
    }


def _check_fields(topic: str, msg, i: int) -> None:
    """The decoded message (any reader's object) carries the values `_messages(i)` wrote."""
    if topic == "/altmarl/sample_request":
        assert list(msg.data) == [i, 3, 7]
    elif topic == "/altmarl/samples":
        assert list(msg.data) == [float(i), 3.0, 1.0, 0.5, -0.25]
    elif topic == "/altmarl/global":
        assert list(msg.data) == [i, 2, 1]
    elif topic == "/altmarl/heartbeat":
        assert msg.data == 40 + i
    elif topic == "/altmarl/stats":
        assert msg.data == f'{{"step": {i}}}'
    elif topic == "/altmarl/markers":
        (marker,) = msg.markers
        assert (marker.ns, marker.id, marker.type, marker.text) == ("zones", i, Marker.CYLINDER, f"zone {i}")
        assert marker.pose.position.y == 2.0 + i
    elif topic == "/robot_0/cmd_vel":
        assert (msg.linear.x, msg.angular.z) == (0.25 + i, -0.5 * i)
    elif topic == "/robot_0/odom":
        assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp.sec) == ("world", f"robot_{i}", 10 + i)
        assert (msg.pose.pose.position.x, msg.pose.pose.orientation.w) == (1.5 * i, 1.0)
        assert msg.twist.twist.linear.x == 0.1 * i
    elif topic == "/clock":
        assert (msg.clock.sec, msg.clock.nanosec) == (100 + i, 5)
    else:
        raise AssertionError(f"unexpected topic {topic}")


def _decoded(path: Path):
    """(topic, log_time, publish_time, message) through mcap's reader and mcap_ros2's decoder."""
    with open(path, "rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, decoded in reader.iter_decoded_messages():
            yield channel.topic, message.log_time, message.publish_time, decoded


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """COUNT messages of every standard type; the odom ones go in as raw CDR bytes, as the node writes them."""
    path = tmp_path_factory.mktemp("rec") / "run.mcap"
    recorder = McapRecorder(path, bag_metadata=True)
    recorder.add_topic("/robot_0/odom", "nav_msgs/Odometry")  # short type form accepted
    for i in range(COUNT):
        for topic, msg in _messages(i).items():
            data = serialize_message(msg) if topic == "/robot_0/odom" else msg
            recorder.write(topic, data, T0 + 1000 * i)
    counts = recorder.close()
    assert recorder.close() == counts  # a second close is a no-op
    assert counts == dict.fromkeys(_messages(0), COUNT)
    return path


def test_read_counts_sees_every_topic(recording):
    assert read_counts(recording) == dict.fromkeys(_messages(0), COUNT)
    assert read_counts(recording.parent) == dict.fromkeys(_messages(0), COUNT)  # the directory works too


def test_file_follows_the_ros2_profile(recording):
    with open(recording, "rb") as handle:
        reader = make_reader(handle)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
    types = {schema.name: schema for schema in summary.schemas.values()}
    assert len(types) == len(summary.schemas) == 8  # one schema per type, shared by the two Int32MultiArray topics
    assert set(types) == set(STANDARD_TYPES)
    for name, schema in types.items():
        assert schema.encoding == "ros2msg"
        assert schema.data.decode() == message_definition(name)
    for channel in summary.channels.values():
        assert channel.message_encoding == "cdr"
        assert "reliability: 1" in channel.metadata["offered_qos_profiles"]
    assert summary.statistics.message_start_time == T0
    assert summary.statistics.message_end_time == T0 + 1000 * (COUNT - 1)


def test_mcap_ros2_decodes_every_message(recording):
    seen: dict[str, list[int]] = {}
    for topic, log_time, publish_time, msg in _decoded(recording):
        i = (log_time - T0) // 1000
        assert publish_time == log_time
        _check_fields(topic, msg, i)
        seen.setdefault(topic, []).append(i)
    assert seen == {topic: list(range(COUNT)) for topic in _messages(0)}


@pytest.mark.parametrize("which", ["file", "bag directory"])
def test_rosbags_decodes_every_message(recording, which):
    path = recording if which == "file" else recording.parent  # the directory is read through metadata.yaml
    seen: dict[str, list[int]] = {}
    with AnyReader([path]) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == dict.fromkeys(_messages(0), COUNT)
        for connection in reader.connections:
            (qos,) = connection.ext.offered_qos_profiles
            assert (qos.reliability.name, qos.durability.name, qos.depth) == ("RELIABLE", "VOLATILE", 10)
        for connection, timestamp, raw in reader.messages():
            i = (timestamp - T0) // 1000
            _check_fields(connection.topic, reader.deserialize(raw, connection.msgtype), i)
            seen.setdefault(connection.topic, []).append(i)
    assert seen == {topic: list(range(COUNT)) for topic in _messages(0)}


def test_message_definition_is_the_rosbag2_concatenation():
    text = message_definition("std_msgs/msg/Int32MultiArray")
    own = message_file("std_msgs/msg/Int32MultiArray").read_text()
    assert text.startswith(own)
    parts = text.split(DELIMITER)
    assert [part.split("\n", 1)[0] for part in parts[1:]] == ["MSG: std_msgs/MultiArrayLayout",
                                                             "MSG: std_msgs/MultiArrayDimension"]
    # every dependency once, depth first in sorted order, as rosbag2's LocalMessageDefinitionSource
    odom = [line for line in message_definition("nav_msgs/Odometry").splitlines() if line.startswith("MSG: ")]
    assert odom == ["MSG: geometry_msgs/PoseWithCovariance", "MSG: geometry_msgs/Pose", "MSG: geometry_msgs/Point",
                    "MSG: geometry_msgs/Quaternion", "MSG: geometry_msgs/TwistWithCovariance",
                    "MSG: geometry_msgs/Twist", "MSG: geometry_msgs/Vector3", "MSG: std_msgs/Header",
                    "MSG: builtin_interfaces/Time"]
    assert message_definition("std_msgs/msg/Int32") == message_file("std_msgs/Int32").read_text()


def test_writer_errors_are_clear(tmp_path):
    with pytest.raises(RecordingError, match="no message definition for no_such_msgs/msg/Thing"):
        message_definition("no_such_msgs/msg/Thing")
    with pytest.raises(RecordingError, match="not of the form pkg/msg/Type"):
        message_definition("Int32")
    recorder = McapRecorder(tmp_path / "x" / "run.mcap")  # parent directories are created
    with pytest.raises(RecordingError, match="has not been added"):
        recorder.write("/raw", b"\x00\x01\x00\x00", T0)
    recorder.write("/a", Int32(data=1), T0)
    with pytest.raises(RecordingError, match="/a was added as std_msgs/msg/Int32, not std_msgs/msg/String"):
        recorder.write("/a", String(data="x"), T0)
    with pytest.raises(RecordingError, match="was added as std_msgs/msg/Int32"):
        recorder.add_topic("/a", "std_msgs/msg/String")
    with pytest.raises(RecordingError, match="fully qualified"):
        recorder.add_topic("a", "std_msgs/msg/Int32")
    assert recorder.close() == {"/a": 1}
    with pytest.raises(RecordingError, match="is closed"):
        recorder.write("/a", Int32(data=2), T0)
    assert read_counts(tmp_path / "x" / "run.mcap") == {"/a": 1}


# --------------------------------------------------------------------------------------------
# corrupt, truncated and missing files

@pytest.mark.parametrize("damage", ["truncated", "no footer", "flipped byte", "not mcap", "empty"])
def test_damaged_file_gives_a_clear_error(recording, tmp_path, damage):
    data = recording.read_bytes()
    broken = {"truncated": data[: len(data) // 2], "no footer": data[:-20],
              "flipped byte": data[:300] + bytes([data[300] ^ 0xFF]) + data[301:],
              "not mcap": b"#ROSBAG V2.0\n" + bytes(200), "empty": b""}[damage]
    path = tmp_path / "broken.mcap"
    path.write_bytes(broken)
    with pytest.raises(RecordingError, match=r"broken\.mcap is not a readable MCAP file \(corrupt or truncated"):
        read_counts(path)


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(RecordingError, match="does not exist"):
        read_counts(tmp_path / "nothing.mcap")
    with pytest.raises(RecordingError, match="holds 0 .mcap files"):
        read_counts(tmp_path)


# --------------------------------------------------------------------------------------------
# the node

def test_topic_types_and_defaults():
    topics = default_topics(2)
    assert len(topics) == len(set(topics)) == 6 + 1 + 2 + 4
    assert {"/clock", "/leader/odom", "/leader/cmd_vel", "/robot_1/odom", "/robot_1/cmd_vel"} <= set(topics)
    assert {topic_type(t)[1] for t in topics} == set(STANDARD_TYPES)
    assert topic_type("/robot_7/odom") == ("/robot_7/odom", "nav_msgs/msg/Odometry")
    assert topic_type("/tf:tf2_msgs/TFMessage") == ("/tf", "tf2_msgs/msg/TFMessage")
    with pytest.raises(RecordingError, match="give it as '/scan:pkg/msg/Type'"):
        topic_type("/scan")
    batched = default_topics(20, [(0, 10), (10, 20)])  # the batched link: arrays per fleet, no robot topics
    assert not any(t.startswith("/robot_") for t in batched) and len(batched) == 6 + 1 + 2 + 2 * 3
    assert dict(topic_type(t) for t in batched if "batch_10_20" in t) == {
        "/altmarl/batch_10_20/poses": "geometry_msgs/msg/PoseArray",
        "/altmarl/batch_10_20/cmd_vel": "std_msgs/msg/Float64MultiArray",
        "/altmarl/batch_10_20/decisions": "std_msgs/msg/Int32MultiArray"}


@pytest.fixture(autouse=True)
def private_dds(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Jazzy and later
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")  # Humble
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_log"))


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.mark.parametrize("overrides, message", [
    ({}, "parameter output is required"),
    ({"topics": ["/scan"]}, "no known message type for topic '/scan'"),
    ({"topics": ["/robot 1/odom"]}, "invalid topic name '/robot 1/odom'"),
    ({"reliability": "sometimes"}, "reliability must be one of"),
    ({"topics": ["/x:no_such_msgs/msg/Thing"]}, "no_such_msgs/msg/Thing is not installed"),
])
def test_node_rejects_bad_parameters(context, tmp_path, overrides, message):
    values = {"output": str(tmp_path / "o") if overrides else "", **overrides}
    params = [Parameter(name, value=value) for name, value in values.items()]
    with pytest.raises(RecordingError, match=message):
        RecorderNode(context=context, parameter_overrides=params)
    assert not (tmp_path / "o" / "run.mcap").exists()


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"recorder exited with {proc.returncode} while waiting for {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{log.read_text()}")
        time.sleep(0.05)


def test_recorder_node_records_what_is_published(context, tmp_path):
    n_msgs, out, log = 25, tmp_path / "out", tmp_path / "recorder.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.time_ns()
    with open(log, "w") as log_handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "altmarl_ros.nodes.recorder_node", "--ros-args", "-p", f"output:={out}",
             "-p", "n:=2", "-p", "use_sim_time:=false"],
            cwd=REPO, env=env, stdout=log_handle, stderr=subprocess.STDOUT)
    node = rclpy.create_node("recorder_test_publisher", context=context)
    try:
        # reliable, deep enough to hold every message until acked; heartbeats transient-local (the recorder's
        # volatile subscription matches it, and the recording must carry it as the offered QoS)
        heartbeat = node.create_publisher(Int32, "/altmarl/heartbeat",
                                          QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        cmd_vel = node.create_publisher(Twist, "/robot_1/cmd_vel", QoSProfile(depth=50))
        _wait(lambda: heartbeat.get_subscription_count() >= 1 and cmd_vel.get_subscription_count() >= 1, 20.0,
              "the recorder's subscriptions", proc, log)
        for i in range(n_msgs):
            heartbeat.publish(Int32(data=i))
            twist = Twist()
            twist.linear.x = 0.5 * i
            cmd_vel.publish(twist)
        assert heartbeat.wait_for_all_acked(Duration(seconds=5)) and cmd_vel.wait_for_all_acked(Duration(seconds=5))
        time.sleep(0.5)  # acked = in the recorder's reader queue; give its executor time to run the callbacks
    finally:
        node.destroy_node()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"recorder did not exit within 10 s of SIGINT:\n{log.read_text()}")
    text = log.read_text()
    assert proc.returncode == 0, text
    assert f"wrote {2 * n_msgs} messages on 2 of 13 topics" in text, text
    assert "Failed to publish log message" not in text, text

    assert read_counts(out / "run.mcap") == {"/altmarl/heartbeat": n_msgs, "/robot_1/cmd_vel": n_msgs}
    values: dict[str, list[float]] = {}
    for topic, log_time, _publish_time, msg in _decoded(out / "run.mcap"):
        assert started <= log_time <= time.time_ns()  # stamped with the node's (wall) clock
        values.setdefault(topic, []).append(msg.data if topic == "/altmarl/heartbeat" else msg.linear.x)
    assert values == {"/altmarl/heartbeat": list(range(n_msgs)), "/robot_1/cmd_vel": [0.5 * i for i in range(n_msgs)]}
    with AnyReader([out]) as reader:  # the bag directory, through metadata.yaml
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    # each channel carries its publisher's offered QoS as discovered from the graph (as `ros2 bag record` does;
    # discovery does not carry history depth)
    assert [(q.reliability.name, q.durability.name) for q in qos["/altmarl/heartbeat"]] == [
        ("RELIABLE", "TRANSIENT_LOCAL")]
    assert [(q.reliability.name, q.durability.name) for q in qos["/robot_1/cmd_vel"]] == [("RELIABLE", "VOLATILE")]


def test_ctrl_c_in_the_middle_of_a_flood_leaves_a_readable_recording(context, tmp_path):
    """SIGINT lands while the recorder is writing: the file must still be whole (every chunk readable).

    A KeyboardInterrupt raised inside the write callback would leave a half-written record in the
    chunk being built; the nodes' SIGINT handling stops the executor instead (nodes.common.run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    node = rclpy.create_node("recorder_flood_publisher", context=context)
    odom = node.create_publisher(Odometry, "/robot_0/odom", QoSProfile(depth=1000))
    try:
        for attempt in range(3):
            out, log = tmp_path / f"out{attempt}", tmp_path / f"recorder{attempt}.log"
            with open(log, "w") as log_handle:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "altmarl_ros.nodes.recorder_node", "--ros-args", "-p", f"output:={out}",
                     "-p", "n:=1", "-p", "use_sim_time:=false", "-p", "flush_period:=0.05"],
                    cwd=REPO, env=env, stdout=log_handle, stderr=subprocess.STDOUT)
            _wait(lambda: odom.get_subscription_count() >= 1, 20.0, "the recorder's subscription", proc, log)
            msg = Odometry()
            end = time.monotonic() + 1.0 + 0.3 * attempt
            while time.monotonic() < end:
                msg.pose.pose.position.x += 1.0
                odom.publish(msg)
            proc.send_signal(signal.SIGINT)  # while messages are still arriving
            for _ in range(2000):
                odom.publish(msg)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"recorder did not exit within 20 s of SIGINT:\n{log.read_text()}")
            assert proc.returncode == 0, log.read_text()
            assert read_counts(out / "run.mcap")["/robot_0/odom"] > 0  # reads every message, checks each chunk
    finally:
        node.destroy_node()
