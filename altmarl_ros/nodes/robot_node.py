"""robot_node: one robot's local agent on ROS 2 topics; fleet_node: many of them in one process.

Per robot (namespace robot_<i>; node `robot_<i>_agent`, in a fleet the hidden `_robot_<i>_agent`): pose in from
`pose_topic` (nav_msgs/Odometry, or geometry_msgs/PoseStamped from motion
capture), `cmd_topic` out at the control rate (gated on the pose messages'
stamps), its decision out each step. The process's host node (`fleet`, or
`robot` for the single-robot executable) carries the coordinator traffic for
the robots it hosts: one subscription each to the broadcast and the sample
requests, forwarded to those robots; their samples (only the robots asked) and
heartbeats (so the coordinator knows they live) go out on the host's
publishers. A robot is announced only once it knows its pose and the host is
matched with the coordinator's request and broadcast topics, so it can answer.

In a fleet the robot nodes are lean: no parameter services, no type
description service, no /rosout publisher (their log lines go to the process's
console and log file), no QoS event handlers (rclpy's default ones only log
incompatible-QoS warnings), and their clocks follow the host's time source (one
/clock subscription per process, `use_sim_time` of the host). That keeps a
robot at three DDS endpoints (pose, cmd, decision) plus its parameter-events
publisher and one entry in the executor's wait set, which bounds the cost of
discovery, of every executor wait and of a clean shutdown with many robots per
process. Their names start with `_`, so they are hidden nodes: `ros2 node list`
and `ros2 param list` show the fleet's host node, which holds the parameters
(`ros2 node list -a` shows them all); a tool that asked each robot node for its
parameters would wait seconds per node for services they do not have. The
single-robot executable (hardware: one robot per computer) keeps a full node.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray

from altmarl_ros.agents.robot_agent import RobotAgent
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import (
    QUIET_PUB,
    QUIET_SUB,
    declare,
    drop_event_handlers,
    load_policy,
    load_world,
    matched_publishers,
    run,
    wall_timer,
    warn_without_clock,
)

RELIABLE_DEPTH = 50
STATUS_PERIOD = 10.0  # wall seconds between a host's "still waiting for ..." lines
HEARTBEAT_SLICES = 10  # a host spreads its robots' heartbeats over this many ticks per period

LEAN_NODE = {"start_parameter_services": False, "enable_rosout": False,
             "parameter_overrides": [Parameter("use_sim_time", value=False),
                                     Parameter("start_type_description_service", value=False)]}


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class RobotNode(Node):
    def __init__(self, robot_id: int, params: dict, host: RobotHost, trained=None, world=None,
                 lean: bool = True) -> None:
        super().__init__(f"_robot_{robot_id}_agent" if lean else f"robot_{robot_id}_agent",
                         namespace=topics.robot_namespace(robot_id),
                         **(LEAN_NODE if lean else {}))
        trained = trained or load_policy(params["policy"])
        world = world or load_world(params["world_config"], trained.game.num_local_states)
        game = trained.game.with_n(params["n"])
        rng = np.random.default_rng([params["seed"], robot_id])
        self.agent = RobotAgent(robot_id, params["n"], game, trained.local_policy, world, rng)
        self.host = host
        pub, sub = {}, {}
        if lean:
            host.share_clock(self)
            drop_event_handlers(self)
            pub, sub = {"event_callbacks": QUIET_PUB}, {"event_callbacks": QUIET_SUB}
        self.control_dt = world.control_dt
        self.last_cmd: float | None = None
        self.pose_topic = self.resolve_topic_name(params["pose_topic"])
        if params["pose_type"] == "pose_stamped":
            self.create_subscription(PoseStamped, params["pose_topic"], self._on_pose_stamped, 10, **sub)
        else:
            self.create_subscription(Odometry, params["pose_topic"], self._on_odom, 10, **sub)
        self.cmd_pub = self.create_publisher(Twist, params["cmd_topic"], 10, **pub)
        self.decision_pub = self.create_publisher(Int32MultiArray, "decision", 10, **pub)

    @property
    def robot_id(self) -> int:
        return self.agent.robot_id

    def _on_odom(self, msg: Odometry) -> None:
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        self._on_pose(p.x, p.y, topics.yaw_from_quaternion(o.z, o.w, o.x, o.y), _seconds(msg.header.stamp))

    def _on_pose_stamped(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._on_pose(p.x, p.y, topics.yaw_from_quaternion(o.z, o.w, o.x, o.y), _seconds(msg.header.stamp))

    def _on_pose(self, x: float, y: float, yaw: float, stamp: float = 0.0) -> None:
        first = self.agent.pose is None
        try:
            self.agent.on_pose(x, y, yaw)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring pose: {exc}", throttle_duration_sec=5.0)
            return
        if first:
            self.host.announce(self)  # ready: it can answer sample requests now
        # the control rate is gated on the pose's stamp (the time the pose was measured), so a busy
        # process that takes a pose late still commands once per control period; unstamped poses
        # fall back to the node's clock
        now = stamp if stamp > 0.0 else self.get_clock().now().nanoseconds * 1e-9
        if self.last_cmd is None or now < self.last_cmd or now - self.last_cmd >= 0.999 * self.control_dt:
            self.last_cmd = now
            linear, angular = self.agent.cmd_vel(self.control_dt)
            msg = Twist()
            msg.linear.x, msg.angular.z = linear, angular
            self.cmd_pub.publish(msg)

    def on_global(self, step: int, global_state: int) -> None:
        try:
            action = self.agent.on_global(step, global_state)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring {topics.GLOBAL} message: {exc}", throttle_duration_sec=5.0)
            return
        if action is not None:
            self.decision_pub.publish(Int32MultiArray(data=[step, int(self.agent.zone), action,
                                                            int(self.agent.destination)]))

    def sample(self, step: int, requested: np.ndarray) -> list[float] | None:
        """This robot's sample [step, id, zone, x, y] if it is among those asked, else None."""
        reply = self.agent.sample_reply(step, requested)
        if reply is None:
            return None
        step, robot_id, zone = reply
        x, y = self.agent.pose[:2]
        return [float(step), float(robot_id), float(zone), float(x), float(y)]


FLEET_DEFAULTS = {"policy": "", "n": 20, "world_config": "", "seed": 0, "first_robot": 0, "last_robot": -1,
                  "pose_topic": "odom", "pose_type": "odometry", "cmd_topic": "cmd_vel", "heartbeat_period": 2.0}


class RobotHost(Node):
    """The process's main node: parameters, the coordinator traffic of the robots it hosts, heartbeats."""

    def __init__(self, name: str = "fleet", extra: dict | None = None) -> None:
        super().__init__(name)
        self.values = declare(self, {**FLEET_DEFAULTS, **(extra or {})})
        self.robots: dict[int, RobotNode] = {}
        self.sample_pub = self.create_publisher(Float64MultiArray, topics.SAMPLES, RELIABLE_DEPTH)
        self.heartbeat_pub = self.create_publisher(Int32, topics.HEARTBEAT, 10 * RELIABLE_DEPTH)
        self.global_sub = self.create_subscription(Int32MultiArray, topics.GLOBAL, self._on_global, RELIABLE_DEPTH)
        self.request_sub = self.create_subscription(Int32MultiArray, topics.SAMPLE_REQUEST, self._on_request,
                                                    RELIABLE_DEPTH)
        self.tick = 0
        self.heard_coordinator = False
        self.create_timer(self.values["heartbeat_period"] / HEARTBEAT_SLICES, self._heartbeats)
        warn_without_clock(self)
        wall_timer(self, STATUS_PERIOD, self._say_what_it_waits_for)

    def _say_what_it_waits_for(self) -> None:
        """Name what keeps its robots from acting (no pose, no coordinator, no broadcast yet), throttled."""
        if not self.robots:
            return
        without_pose = [i for i, robot in self.robots.items() if robot.agent.pose is None]
        if without_pose:
            first = self.robots[without_pose[0]]
            topic = first.pose_topic
            self.get_logger().warning(
                f"{len(without_pose)} of {len(self.robots)} robots have no pose yet (e.g. robot {without_pose[0]} "
                f"on {topic}, {self.values['pose_type']}): they publish nothing until their driver, motion "
                "capture or the sim publishes it")
        if not self.connected():
            self.get_logger().warning(
                f"not matched with a coordinator yet (no publisher on {topics.SAMPLE_REQUEST} / {topics.GLOBAL}, "
                f"or no subscriber on {topics.SAMPLES}): the robots stand still (zero commands) until one runs "
                "on this ROS_DOMAIN_ID")
        elif not self.heard_coordinator:
            self.get_logger().info(f"matched with a coordinator; waiting for its first broadcast on {topics.GLOBAL}")

    def add(self, robot: RobotNode) -> RobotNode:
        self.robots[robot.robot_id] = robot
        return robot

    def share_clock(self, node: Node) -> None:
        """Drive a hosted node's clock from this node's time source (one /clock subscription per process)."""
        self._time_source.attach_clock(node.get_clock())

    def connected(self) -> bool:
        """Matched with a coordinator: its requests and broadcasts reach this host, and someone takes samples."""
        return (matched_publishers(self, self.request_sub) > 0 and matched_publishers(self, self.global_sub) > 0
                and self.sample_pub.get_subscription_count() > 0 and self.heartbeat_pub.get_subscription_count() > 0)

    def announce(self, robot: RobotNode) -> None:
        if robot.agent.pose is not None and self.connected():
            self.heartbeat_pub.publish(Int32(data=robot.robot_id))

    def _heartbeats(self) -> None:
        """Every robot with a pose, once per heartbeat period, spread over HEARTBEAT_SLICES ticks."""
        slice_ = self.tick % HEARTBEAT_SLICES
        self.tick += 1
        if not self.connected():
            return
        for index, robot in enumerate(self.robots.values()):
            if index % HEARTBEAT_SLICES == slice_ and robot.agent.pose is not None:
                self.heartbeat_pub.publish(Int32(data=robot.robot_id))

    def _on_global(self, msg: Int32MultiArray) -> None:
        if len(msg.data) != 3:
            self.get_logger().warning(f"malformed {topics.GLOBAL} message {list(msg.data)}", throttle_duration_sec=5.0)
            return
        step, global_state, _ = (int(v) for v in msg.data)
        self.heard_coordinator = True
        for robot in self.robots.values():
            robot.on_global(step, global_state)

    def _on_request(self, msg: Int32MultiArray) -> None:
        if len(msg.data) < 1:
            return
        step = int(msg.data[0])
        requested = np.asarray(msg.data[1:], dtype=np.int64)
        for robot_id in dict.fromkeys(requested.tolist()):  # each asked robot answers once
            robot = self.robots.get(robot_id)
            if robot is None:
                continue
            data = robot.sample(step, requested)
            if data is not None:
                self.sample_pub.publish(Float64MultiArray(data=data))


def make_fleet() -> list[Node]:
    host = RobotHost()
    p = host.values
    last = p["n"] if p["last_robot"] < 0 else p["last_robot"]
    trained = load_policy(p["policy"])
    world = load_world(p["world_config"], trained.game.num_local_states)
    for i in range(p["first_robot"], last):
        host.add(RobotNode(i, p, host, trained, world))
    host.get_logger().info(f"hosting robots {p['first_robot']}..{last - 1} on one executor")
    return [host, *host.robots.values()]


def make_robot() -> list[Node]:
    host = RobotHost("robot", extra={"robot_id": 0})
    robot_id = host.values["robot_id"]
    robot = host.add(RobotNode(robot_id, host.values, host, lean=False))
    return [host, robot]


def main_fleet(args: list[str] | None = None) -> int:
    return run(make_fleet, args)


def main(args: list[str] | None = None) -> int:
    return run(make_robot, args)


if __name__ == "__main__":
    raise SystemExit(main())
