"""robot_node: one robot's local agent on ROS 2 topics; fleet_node: many of them in one process.

Per robot (namespace robot_<i>): pose in from `pose_topic` (nav_msgs/Odometry,
or geometry_msgs/PoseStamped from motion capture), `cmd_topic` out at the
control rate; the coordinator's broadcast and sample requests in, this robot's
sample out only when it is asked; a heartbeat so the coordinator knows it lives.
The fleet executable hosts robots [first_robot, last_robot) as separate nodes on
one executor (one DDS participant per process).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray

from altmarl_ros.agents.robot_agent import RobotAgent
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import declare, load_policy, load_world, run

RELIABLE_DEPTH = 50


class RobotNode(Node):
    def __init__(self, robot_id: int, params: dict) -> None:
        super().__init__(f"robot_{robot_id}_agent", namespace=topics.robot_namespace(robot_id))
        trained = load_policy(params["policy"])
        world = load_world(params["world_config"], trained.game.num_local_states)
        game = trained.game.with_n(params["n"])
        rng = np.random.default_rng([params["seed"], robot_id])
        self.agent = RobotAgent(robot_id, params["n"], game, trained.local_policy, world, rng)
        self.control_dt = world.control_dt
        self.last_cmd = None
        if params["pose_type"] == "pose_stamped":
            self.create_subscription(PoseStamped, params["pose_topic"], self._on_pose_stamped, 10)
        else:
            self.create_subscription(Odometry, params["pose_topic"], self._on_odom, 10)
        self.cmd_pub = self.create_publisher(Twist, params["cmd_topic"], 10)
        self.sample_pub = self.create_publisher(Float64MultiArray, topics.SAMPLES, RELIABLE_DEPTH)
        self.heartbeat_pub = self.create_publisher(Int32, topics.HEARTBEAT, 10)
        self.decision_pub = self.create_publisher(Int32MultiArray, "decision", 10)
        self.create_subscription(Int32MultiArray, topics.GLOBAL, self._on_global, RELIABLE_DEPTH)
        self.create_subscription(Int32MultiArray, topics.SAMPLE_REQUEST, self._on_request, RELIABLE_DEPTH)
        self.create_timer(params["heartbeat_period"], self._heartbeat)

    def _on_odom(self, msg: Odometry) -> None:
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        self._on_pose(p.x, p.y, topics.yaw_from_quaternion(o.z, o.w, o.x, o.y))

    def _on_pose_stamped(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._on_pose(p.x, p.y, topics.yaw_from_quaternion(o.z, o.w, o.x, o.y))

    def _on_pose(self, x: float, y: float, yaw: float) -> None:
        first = self.agent.pose is None
        try:
            self.agent.on_pose(x, y, yaw)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring pose: {exc}", throttle_duration_sec=5.0)
            return
        if first:
            self._heartbeat()  # ready: it can answer sample requests now
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.last_cmd is None or now - self.last_cmd >= 0.999 * self.control_dt:
            self.last_cmd = now
            linear, angular = self.agent.cmd_vel(self.control_dt)
            msg = Twist()
            msg.linear.x, msg.angular.z = linear, angular
            self.cmd_pub.publish(msg)

    def _on_global(self, msg: Int32MultiArray) -> None:
        if len(msg.data) != 3:
            self.get_logger().warning(f"malformed {topics.GLOBAL} message {list(msg.data)}", throttle_duration_sec=5.0)
            return
        step, global_state, _ = msg.data
        try:
            action = self.agent.on_global(int(step), int(global_state))
        except ValueError as exc:
            self.get_logger().warning(f"ignoring {topics.GLOBAL} message: {exc}", throttle_duration_sec=5.0)
            return
        if action is not None:
            self.decision_pub.publish(Int32MultiArray(data=[int(step), int(self.agent.zone), action,
                                                            int(self.agent.destination)]))

    def _on_request(self, msg: Int32MultiArray) -> None:
        if len(msg.data) < 1:
            return
        reply = self.agent.sample_reply(int(msg.data[0]), np.asarray(msg.data[1:], dtype=np.int64))
        if reply is not None:
            step, robot_id, zone = reply
            x, y = self.agent.pose[:2]
            self.sample_pub.publish(Float64MultiArray(data=[float(step), float(robot_id), float(zone), x, y]))

    def _heartbeat(self) -> None:
        """Announce this robot to the coordinator, once it knows where it is."""
        if self.agent.pose is not None:
            self.heartbeat_pub.publish(Int32(data=self.agent.robot_id))


FLEET_DEFAULTS = {"policy": "", "n": 20, "world_config": "", "seed": 0, "first_robot": 0, "last_robot": -1,
                  "pose_topic": "odom", "pose_type": "odometry", "cmd_topic": "cmd_vel", "heartbeat_period": 2.0}


class FleetParameters(Node):
    """Reads the fleet's parameters once; the robot nodes are created from them."""

    def __init__(self, name: str = "fleet") -> None:
        super().__init__(name)
        self.values = declare(self, FLEET_DEFAULTS)


def make_fleet() -> list[Node]:
    holder = FleetParameters()
    p = holder.values
    last = p["n"] if p["last_robot"] < 0 else p["last_robot"]
    robots = [RobotNode(i, p) for i in range(p["first_robot"], last)]
    holder.get_logger().info(f"hosting robots {p['first_robot']}..{last - 1} on one executor")
    return [holder, *robots]


def make_robot() -> list[Node]:
    holder = FleetParameters("robot")
    robot_id = holder.declare_parameter("robot_id", 0).value
    return [holder, RobotNode(robot_id, holder.values)]


def main_fleet(args: list[str] | None = None) -> int:
    return run(make_fleet, args)


def main(args: list[str] | None = None) -> int:
    return run(make_robot, args)


if __name__ == "__main__":
    raise SystemExit(main())
