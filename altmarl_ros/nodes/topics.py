"""Topic names and message layouts of the running system (standard message types only).

| topic | type | layout |
|---|---|---|
| /altmarl/sample_request | std_msgs/Int32MultiArray | [step, id_1, ..., id_k] |
| /altmarl/samples | std_msgs/Float64MultiArray | [step, robot_id, zone, x, y] |
| /altmarl/global | std_msgs/Int32MultiArray | [step, s_g, a_g] |
| /altmarl/heartbeat | std_msgs/Int32 | robot id |
| /altmarl/stats | std_msgs/String | JSON: comm statistics and the last decision |
| /altmarl/markers | visualization_msgs/MarkerArray | zones, robots by zone, sampled, leader target, text |
| /robot_<i>/decision | std_msgs/Int32MultiArray | [step, zone, local action, destination zone] |
| /robot_<i>/odom, /leader/odom | nav_msgs/Odometry | pose and twist in frame `world` |
| /robot_<i>/cmd_vel, /leader/cmd_vel | geometry_msgs/Twist | linear.x, angular.z |
| /clock | rosgraph_msgs/Clock | simulated time |
| /tf | tf2_msgs/TFMessage | world -> <body>/base_link for the bodies on the sim's `tf_bodies` allow-list |
"""

from __future__ import annotations

import math

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
