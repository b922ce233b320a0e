"""Topic names and message layouts of the running system (standard message types only).

| topic | type | layout |
|---|---|---|
| /altmarl/sample_request | std_msgs/Int32MultiArray | [session, step, id_1, ..., id_k] |
| /altmarl/samples | std_msgs/Float64MultiArray | [session, step, robot_id, zone, x, y] |
| /altmarl/global | std_msgs/Int32MultiArray | [session, step, s_g, a_g] |
| /altmarl/heartbeat | std_msgs/Int32 | robot id |
| /altmarl/stats | std_msgs/String | JSON: comm statistics and the last decision |
| /altmarl/markers | visualization_msgs/MarkerArray | zones, robots by zone, sampled, leader target, text |
| /robot_<i>/decision | std_msgs/Int32MultiArray | [step, zone, local action, destination zone] |
| /robot_<i>/odom, /leader/odom | nav_msgs/Odometry | pose and twist in frame `world` |
| /robot_<i>/cmd_vel, /leader/cmd_vel | geometry_msgs/Twist | linear.x, angular.z |
| /altmarl/batch_<a>_<b>/poses | geometry_msgs/PoseArray | batched: robots a..b-1 in id order, stamp = sim time |
| /altmarl/batch_<a>_<b>/cmd_vel | std_msgs/Float64MultiArray | batched: [v_a, w_a, ..., v_b-1, w_b-1] |
| /altmarl/batch_<a>_<b>/decisions | std_msgs/Int32MultiArray | batched: [step, (id, zone, action, destination)...] |
| /clock | rosgraph_msgs/Clock | simulated time |
| /tf | tf2_msgs/TFMessage | world -> <body>/base_link for the bodies on the sim's `tf_bodies` allow-list |

`session` identifies one run of a coordinator (a fresh id at every start); robots follow the
session they hear from, so a restarted coordinator is followed from its first step. Every
message from the network goes through a `parse_*` function here before anything else touches
it: the checks cost O(1) (lengths and ranges first) and a refusal says what is wrong without
echoing the payload, so a malformed or hostile message costs one bounded, throttled log line.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence

import numpy as np

from altmarl_ros.marl.errors import AltmarlError

SAMPLE_REQUEST = "/altmarl/sample_request"
SAMPLES = "/altmarl/samples"
GLOBAL = "/altmarl/global"
HEARTBEAT = "/altmarl/heartbeat"
STATS = "/altmarl/stats"
MARKERS = "/altmarl/markers"
LEADER = "leader"
WORLD_FRAME = "world"


def robot_namespace(robot_id: int) -> str:
    return f"robot_{robot_id}"


LINKS = ("per_robot", "batched")  # how the sim and the fleets exchange poses and commands (see batch_topic)


def batch_topic(first: int, last: int, name: str) -> str:
    """A batched-link topic of the fleet process hosting robots [first, last): poses, cmd_vel or decisions."""
    return f"/altmarl/batch_{first}_{last}/{name}"


def yaw_from_quaternion(z: float, w: float, x: float = 0.0, y: float = 0.0) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def parse_tf_bodies(text: str, n: int) -> list[int]:
    """Bodies named by a TF allow-list: 'leader', robot ids and ranges ('0,3-5'), or 'all'; '' is none.

    Body 0 is the leader, body i + 1 robot i (the world's numbering).
    """
    bodies: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "all":
            return list(range(n + 1))
        if item == LEADER:
            bodies.add(0)
            continue
        try:
            first, _, last = item.partition("-")
            ids = range(int(first), int(last or first) + 1)
        except ValueError:
            raise AltmarlError(
                f"tf_bodies entry {item!r} is not 'leader', 'all', a robot id or a range like 3-7") from None
        if not ids or ids.start < 0 or ids.stop > n:
            raise AltmarlError(f"tf_bodies entry {item!r} names robots outside 0..{n - 1}")
        bodies.update(i + 1 for i in ids)
    return sorted(bodies)


def body_frame(body: int) -> str:
    return f"{LEADER if body == 0 else robot_namespace(body - 1)}/base_link"


MAX_SESSION = 2**31 - 1


class MessageError(AltmarlError, ValueError):
    """A message from the network that is not what the protocol says; dropped, never fatal."""


def new_session() -> int:
    """A coordinator run's id in [1, 2^31 - 1]: from the OS, not from the run's seed (two runs with one
    seed must still be told apart; no draw of the algorithm depends on it)."""
    return int.from_bytes(os.urandom(4), "little") % MAX_SESSION + 1


def _integer(value: float, what: str, low: int, high: int) -> int:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value == int(value)):
        raise MessageError(f"{what} is not an integer")
    number = int(value)
    if not low <= number <= high:
        raise MessageError(f"{what} {number} outside [{low}, {high}]")
    return number


def parse_count(value: object, what: str, low: int, high: int) -> int:
    """An integer field of a JSON message (bool, float and str are refused; no overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError(f"{what} is not a number")
    return _integer(value, what, low, high)


def request_data(session: int, step: int, ids: Sequence[int]) -> list[int]:
    return [session, step, *ids]


def parse_request(data: Sequence[int], n: int) -> tuple[int, int, list[int]]:
    """(session, step, ids) of a sample request; at most n ids, each in [0, n)."""
    if not 2 <= len(data) <= 2 + n:
        raise MessageError(f"sample request of length {len(data)}; expected [session, step, ids] with at most "
                           f"{n} ids")
    session = _integer(data[0], "session", 1, MAX_SESSION)
    step = _integer(data[1], "step", 1, MAX_SESSION)
    ids = list(data[2:])
    if ids and (min(ids) < 0 or max(ids) >= n):
        raise MessageError(f"sample request names robots outside [0, {n})")
    return session, step, ids


def global_data(session: int, step: int, global_state: int, global_action: int) -> list[int]:
    return [session, step, global_state, global_action]


def parse_global(data: Sequence[int], num_global_states: int, num_global_actions: int) -> tuple[int, int, int, int]:
    """(session, step, s_g, a_g) of a broadcast."""
    if len(data) != 4:
        raise MessageError(f"broadcast of length {len(data)}; expected [session, step, s_g, a_g]")
    return (_integer(data[0], "session", 1, MAX_SESSION), _integer(data[1], "step", 1, MAX_SESSION),
            _integer(data[2], "global state", 0, num_global_states - 1),
            _integer(data[3], "global action", 0, num_global_actions - 1))


def sample_data(session: int, step: int, robot_id: int, zone: int, x: float, y: float) -> list[float]:
    return [float(session), float(step), float(robot_id), float(zone), float(x), float(y)]


def parse_sample(data: Sequence[float], n: int, zones: int) -> tuple[int, int, int, int, float, float]:
    """(session, step, robot_id, zone, x, y) of a robot's reply; ids and zones must be whole numbers."""
    if len(data) != 6:
        raise MessageError(f"sample of length {len(data)}; expected [session, step, robot_id, zone, x, y]")
    x, y = float(data[4]), float(data[5])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise MessageError("sample position is not finite")
    return (_integer(data[0], "session", 1, MAX_SESSION), _integer(data[1], "step", 1, MAX_SESSION),
            _integer(data[2], "robot id", 0, n - 1), _integer(data[3], "zone", 0, zones - 1), x, y)


def parse_heartbeat(value: int, n: int) -> int:
    return _integer(value, "heartbeat robot id", 0, n - 1)


def parse_pose(x: float, y: float, yaw: float, limit: float = 1e6) -> tuple[float, float, float]:
    """A pose from odometry or motion capture: finite and within `limit` metres of the origin."""
    if not all(math.isfinite(v) for v in (x, y, yaw)):
        raise MessageError("pose contains NaN or inf")
    if abs(x) > limit or abs(y) > limit:
        raise MessageError(f"pose more than {limit:g} m from the origin")
    return float(x), float(y), float(yaw)


def parse_twist(linear: float, angular: float) -> tuple[float, float]:
    """A velocity command: finite (the world and the controllers bound its size)."""
    if not (math.isfinite(linear) and math.isfinite(angular)):
        raise MessageError("velocity command contains NaN or inf")
    return float(linear), float(angular)


CDR_LITTLE_ENDIAN = b"\x00\x01\x00\x00"  # the encapsulation header of a serialized ROS 2 message (XCDR1, LE)
MAX_FRAME_ID = 256


def _align(offset: int, size: int) -> int:
    return (offset + size - 1) // size * size


def pose_array_cdr(stamp_seconds: float, frame_id: str, poses: np.ndarray) -> bytes:
    """A geometry_msgs/PoseArray of planar poses (x, y, yaw), serialized as rclpy would (CDR, little endian).

    The batched link publishes thousands of poses per tick; building them as rclpy Pose objects costs
    microseconds each, this costs one numpy copy. Tested byte for byte against rclpy's serializer."""
    sec = int(stamp_seconds)
    nanosec = min(int(round((stamp_seconds - sec) * 1e9)), 999_999_999)
    frame = frame_id.encode() + b"\x00"
    head = struct.pack("<iII", sec, nanosec, len(frame)) + frame  # header: stamp, frame_id
    head += b"\x00" * (_align(len(head), 4) - len(head)) + struct.pack("<I", len(poses))  # sequence length
    head += b"\x00" * (_align(len(head), 8) - len(head))  # the doubles are 8-aligned
    values = np.zeros((len(poses), 7))  # position x, y, z, orientation x, y, z, w
    values[:, 0], values[:, 1] = poses[:, 0], poses[:, 1]
    values[:, 5], values[:, 6] = np.sin(poses[:, 2] / 2.0), np.cos(poses[:, 2] / 2.0)
    return CDR_LITTLE_ENDIAN + head + values.astype("<f8").tobytes()


def parse_pose_array_cdr(data: bytes, count: int, limit: float = 1e6) -> tuple[float, np.ndarray]:
    """(stamp in seconds, (count, 3) x, y, yaw) of a serialized geometry_msgs/PoseArray of exactly `count`
    poses; the checks (lengths first, then finite and within `limit` m) cost O(1) before the payload."""
    data = bytes(data)
    if len(data) < 4 + 12 or data[:2] != CDR_LITTLE_ENDIAN[:2]:
        raise MessageError("not a little-endian CDR PoseArray")
    body = memoryview(data)[4:]
    sec, nanosec, frame_length = struct.unpack_from("<iII", body, 0)
    if not 1 <= frame_length <= MAX_FRAME_ID or 12 + frame_length + 8 > len(body):
        raise MessageError(f"frame_id of {frame_length} bytes; expected 1..{MAX_FRAME_ID}")
    at = _align(12 + frame_length, 4)
    (length,) = struct.unpack_from("<I", body, at)
    if length != count:
        raise MessageError(f"{length} poses; expected {count}")
    at = _align(at + 4, 8)
    if not 0 <= len(body) - (at + 56 * count) < 8:
        raise MessageError(f"{len(data)} bytes; expected {4 + at + 56 * count} for {count} poses")
    values = np.frombuffer(body, dtype="<f8", count=7 * count, offset=at).reshape(count, 7)
    if not np.all(np.isfinite(values)):
        raise MessageError("pose contains NaN or inf")
    if np.any(np.abs(values[:, :2]) > limit):
        raise MessageError(f"pose more than {limit:g} m from the origin")
    x, y, z, w = values[:, 3], values[:, 4], values[:, 5], values[:, 6]
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return sec + nanosec * 1e-9, np.column_stack([values[:, 0], values[:, 1], yaw])


def parse_batch_cmd(data: Sequence[float], count: int) -> list[float]:
    """A batched command message: 2 x count finite values, (v, omega) per robot in id order."""
    if len(data) != 2 * count:
        raise MessageError(f"length {len(data)}; expected {2 * count} (v, omega for each of {count} robots)")
    values = [float(v) for v in data]
    if not all(math.isfinite(v) for v in values):
        raise MessageError("velocity command contains NaN or inf")
    return values


def batch_decisions_data(step: int, decisions: Sequence[tuple[int, int, int, int]]) -> list[int]:
    return [step, *(int(v) for decision in decisions for v in decision)]


def parse_batch_decisions(data: Sequence[int], n: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    """[step, (id, zone, action, destination) ...]: ids must lie in [0, n)."""
    if len(data) < 1 or (len(data) - 1) % 4 or len(data) > 1 + 4 * n:
        raise MessageError(f"length {len(data)}; expected 1 + 4 x robots (at most {n} robots)")
    step = _integer(data[0], "step", 1, MAX_SESSION)
    rows = [tuple(int(v) for v in data[i:i + 4]) for i in range(1, len(data), 4)]
    if any(not 0 <= row[0] < n for row in rows):
        raise MessageError(f"robot id outside [0, {n})")
    return step, rows


class SessionFollower:
    """Which coordinator broadcasts a robot acts on: each new step of the session it follows, once.

    A broadcast of another session is followed at once (a restarted coordinator, or first contact);
    within a session a step at or below the last one is a duplicate and dropped, unless it lies more
    than `window` steps below it: then the last step was forged or corrupt, and the sequence is
    followed from the new step. So no single message, forged or not, stops a robot for more than
    that one message. The drops are counted, by reason.
    """

    def __init__(self, window: int = 16) -> None:
        self.window = window
        self.session: int | None = None
        self.last_step = 0
        self.dropped = 0
        self.switches = 0  # sessions followed (1 after the first broadcast)
        self.resets = 0  # steps that went far back within a session

    def accept(self, session: int, step: int) -> bool:
        if session != self.session:
            self.session, self.last_step = session, step
            self.switches += 1
            return True
        if step > self.last_step:
            self.last_step = step
            return True
        if step < self.last_step - self.window:
            self.last_step = step
            self.resets += 1
            return True
        self.dropped += 1
        return False
