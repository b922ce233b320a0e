"""Every node's ROS 2 parameters and their defaults, in one place and without rclpy.

`common.declare(node, Params)` declares a dataclass's fields (types from the defaults); the launch plan's
`LaunchConfig` takes its shared defaults from here, and `config/altmarl.yaml` is tested against these
classes (test_launch_plan), so a default lives in exactly one home.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SimParams:
    policy: str = ""  # the run whose game places the robots (its task's initial distribution)
    n: int = 20
    backend: str = ""  # kinematic | pybullet; "" = the world config's backend: key (kinematic unless it says so)
    world_config: str = ""
    seed: int = 0
    speedup: float = 1.0  # simulated seconds per wall second
    odom_rate: float = 0.0  # Hz; 0 = the world's control rate
    clock_rate: float = 100.0  # Hz of /clock
    marker_rate: float = 2.0  # Hz (sim time)
    cmd_timeout: float = 1.0  # s: an older command counts as zero
    tf_bodies: str = "leader"  # "leader", ids and ranges ("0,3-5"), "all" or ""
    tf_rate: float = 10.0  # Hz (sim time)
    link: str = "per_robot"  # per_robot | batched
    robots_per_process: int = 25  # the fleets' size on the batched link (one pose array each)


@dataclass(frozen=True)
class CoordinatorParams:
    policy: str = ""
    n: int = 20
    k: int = 0  # 0 = the policy's k (another k is refused by the Coordinator)
    world_config: str = ""
    seed: int = 0
    learn: bool = False  # online G-LEARN
    epsilon: float = 0.1  # exploration when learning
    learning_rate: float = 0.0  # 0 = 1/(1+visits)^0.8 per entry
    decision_steps: int = 0  # stop after this many steps; 0 = run until stopped
    checkpoint_out: str = ""  # where a learning coordinator saves (and resumes) its Q table
    save_every: int = 20  # decision steps between online saves
    reply_timeout: float = 1.5  # s (sim time) to wait for a step's k replies
    max_missed: int = 3  # missed requests in a row before a robot is presumed dead
    liveness_timeout: float = 6.0  # s without any message before a robot is presumed dead
    startup_timeout: float = 20.0  # s to wait for k robots before the first step
    tick: float = 0.05  # s between checks of the step's state
    expected_listeners: int = 0  # processes the broadcast must reach before the first step
    leader_pose_topic: str = "odom"  # under leader/
    leader_pose_type: str = "odometry"  # odometry | pose_stamped
    leader_cmd_topic: str = "cmd_vel"  # under leader/


# what `ros2 param set` may change while the coordinator runs; every other parameter is read-only
COORDINATOR_DYNAMIC = ("epsilon", "learning_rate", "reply_timeout", "max_missed", "liveness_timeout", "save_every")


@dataclass(frozen=True)
class FleetParams:
    policy: str = ""
    n: int = 20
    world_config: str = ""
    seed: int = 0
    first_robot: int = 0  # robots [first_robot, last_robot) of this process
    last_robot: int = -1  # -1 = n
    pose_topic: str = "odom"  # per robot, relative to robot_<i>/
    pose_type: str = "odometry"  # odometry | pose_stamped
    cmd_topic: str = "cmd_vel"
    heartbeat_period: float = 2.0  # s between a robot's heartbeats
    pose_timeout: float = 1.0  # s without a pose before a robot stops
    coordinator_timeout: float = 0.0  # s without the coordinator before robots stop; 0 = 3 decision periods
    link: str = "per_robot"


@dataclass(frozen=True)
class RobotParams(FleetParams):
    robot_id: int = 0  # one robot per computer (robot.launch.py)


@dataclass(frozen=True)
class RecorderParams:
    output: str = ""  # directory of run.mcap (required)
    n: int = 0  # robots whose topics are recorded
    reliability: str = "reliable"  # reliable | best_effort
    depth: int = 100  # queue depth per topic
    flush_period: float = 5.0  # s between flushes to disk
    max_message_bytes: int = 4 << 20  # a larger message is counted and dropped
    link: str = "per_robot"
    robots_per_process: int = 25


NODE_PARAMS = {"sim": SimParams, "coordinator": CoordinatorParams, "fleet": FleetParams, "robot": RobotParams,
               "recorder": RecorderParams}


def defaults(params: type) -> dict[str, Any]:
    """A parameters class's fields and defaults, in declaration order."""
    return {field.name: field.default for field in dataclasses.fields(params)}
