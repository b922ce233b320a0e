"""sim_node: the swarm world (PyBullet or kinematic) behind ROS 2 topics.

Subscribes /robot_<i>/cmd_vel and /leader/cmd_vel; publishes /robot_<i>/odom,
/leader/odom and /clock, each at its own rate (with `link:=batched`, instead of the
per-robot topics: one geometry_msgs/PoseArray out and one command array in per fleet
process, /altmarl/batch_<first>_<last>/{poses,cmd_vel}, for the ranges that
`robots_per_process` gives, as the launch plan splits them), robot markers for RViz, and /tf
(world -> <body>/base_link) for the bodies on the `tf_bodies` allow-list where
tf2_msgs is installed (every ROS 2 install; the PyPI wheels have none, so there
the node says once that it publishes no TF).
It is the clock: it steps on a wall-clock timer, `speedup` simulated seconds per
wall second, and stamps everything with simulated time. A command older than
`cmd_timeout` simulated seconds is treated as zero (a dead robot stops).
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseArray, TransformStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from std_msgs.msg import ColorRGBA, Float64MultiArray
from visualization_msgs.msg import Marker, MarkerArray

from altmarl_ros import runs
from altmarl_ros.bringup.launch_plan import robot_ranges
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import QUIET_PUB, QUIET_SUB, declare, load_world, run
from altmarl_ros.nodes.params import SimParams
from altmarl_ros.sim.world import SwarmWorld, initial_zones

ZONE_COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
                (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))


def stamp(seconds: float) -> Time:
    whole = int(seconds)
    return Time(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        p = declare(self, SimParams)
        trained = runs.load(p["policy"], expect_task="zones")
        # backend "": the world config's `backend:` (kinematic unless it names pybullet)
        self.world_config = load_world(p["world_config"], trained.game.num_local_states,
                                       **({"backend": p["backend"]} if p["backend"] else {}))
        game = trained.game.with_n(p["n"])
        rng = np.random.default_rng(p["seed"])
        leader_zone, zones = initial_zones(game, rng)
        self.world = SwarmWorld(self.world_config, zones, leader_zone, rng)
        self.n = p["n"]
        self.cmd = np.zeros((self.n + 1, 2))
        self.cmd_time = np.full(self.n + 1, -np.inf)
        self.cmd_timeout = p["cmd_timeout"]
        self.subscriptions_ = [self.create_subscription(Twist, f"/{topics.LEADER}/cmd_vel",
                                                        lambda m: self._on_cmd(0, m), 10)]
        self.odom_pubs = [self.create_publisher(Odometry, f"/{topics.LEADER}/odom", 10)]
        if p["link"] not in topics.LINKS:
            raise AltmarlError(f"link must be one of {list(topics.LINKS)}, got {p['link']!r}")
        if p["robots_per_process"] < 1:
            raise AltmarlError(f"robots_per_process must be >= 1, got {p['robots_per_process']}")
        self.batches = robot_ranges(self.n, p["robots_per_process"]) if p["link"] == "batched" else []
        self.batch_pubs = []
        for first, last in self.batches:  # one pose array out, one command array in, per fleet process
            self.batch_pubs.append(self.create_publisher(PoseArray, topics.batch_topic(first, last, "poses"), 10))
            self.subscriptions_.append(self.create_subscription(
                Float64MultiArray, topics.batch_topic(first, last, "cmd_vel"),
                lambda m, first=first, last=last: self._on_batch_cmd(first, last, m), 10))
        for i in range(self.n if not self.batches else 0):  # per robot: no QoS event handlers (see QUIET_SUB)
            ns = topics.robot_namespace(i)
            self.subscriptions_.append(self.create_subscription(
                Twist, f"/{ns}/cmd_vel", lambda m, body=i + 1: self._on_cmd(body, m), 10, event_callbacks=QUIET_SUB))
            self.odom_pubs.append(self.create_publisher(Odometry, f"/{ns}/odom", 10, event_callbacks=QUIET_PUB))
        self.clock_pub = self.create_publisher(ClockMsg, "/clock", 10)
        self.marker_pub = self.create_publisher(MarkerArray, topics.MARKERS, 10)
        control_dt = self.world_config.control_dt
        odom_rate = p["odom_rate"] or self.world_config.control_rate
        self.odom_every = max(1, int(round(1.0 / (odom_rate * control_dt))))
        self.marker_every = max(1, int(round(1.0 / (p["marker_rate"] * control_dt))))
        self.tf_bodies, self.tf_pub = topics.parse_tf_bodies(p["tf_bodies"], self.n), None
        if self.tf_bodies:
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError:
                self.get_logger().warning(f"tf_bodies names {len(self.tf_bodies)} bodies but tf2_msgs is not "
                                          "installed here (no PyPI wheel): publishing no /tf")
            else:
                self.tf_message = TFMessage
                self.tf_pub = self.create_publisher(TFMessage, "/tf", 10)
        self.tf_every = max(1, int(round(1.0 / (p["tf_rate"] * control_dt)))) if p["tf_rate"] > 0 else 0
        self.ticks = 0
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(control_dt / p["speedup"], self._tick, clock=wall)
        self.get_logger().info(f"{self.world_config.backend} world with {self.n} robots, "
                               f"{self.world_config.zones} zones, speedup {p['speedup']}")

    def _on_cmd(self, body: int, msg: Twist) -> None:
        try:
            self.cmd[body] = topics.parse_twist(msg.linear.x, msg.angular.z)
        except topics.MessageError as exc:
            self.get_logger().warning(f"dropped a command for body {body}: {exc}", throttle_duration_sec=5.0)
            return
        self.cmd_time[body] = self.world.time

    def _on_batch_cmd(self, first: int, last: int, msg: Float64MultiArray) -> None:
        try:
            values = topics.parse_batch_cmd(msg.data, last - first)
        except topics.MessageError as exc:
            self.get_logger().warning(f"dropped a command array for robots {first}..{last - 1}: {exc}",
                                      throttle_duration_sec=5.0)
            return
        self.cmd[first + 1:last + 1] = np.reshape(values, (last - first, 2))
        self.cmd_time[first + 1:last + 1] = self.world.time

    def _tick(self) -> None:
        fresh = self.world.time - self.cmd_time <= self.cmd_timeout
        command = np.where(fresh[:, None], self.cmd, 0.0)
        self.world.set_cmd_vel(command[:, 0], command[:, 1])
        self.world.step()
        self.ticks += 1
        now = stamp(self.world.time)
        self.clock_pub.publish(ClockMsg(clock=now))
        if self.ticks % self.odom_every == 0:
            self._publish_odom(now)
        if self.ticks % self.marker_every == 0:
            self._publish_markers(now)
        if self.tf_pub is not None and self.tf_every and self.ticks % self.tf_every == 0:
            self._publish_tf(now)

    def _publish_tf(self, now: Time) -> None:
        poses = self.world.poses()
        transforms = []
        for body in self.tf_bodies:
            t = TransformStamped()
            t.header.stamp, t.header.frame_id = now, topics.WORLD_FRAME
            t.child_frame_id = topics.body_frame(body)
            t.transform.translation.x, t.transform.translation.y = float(poses[body, 0]), float(poses[body, 1])
            r = t.transform.rotation
            r.x, r.y, r.z, r.w = topics.quaternion_from_yaw(float(poses[body, 2]))
            transforms.append(t)
        self.tf_pub.publish(self.tf_message(transforms=transforms))

    def _publish_odom(self, now: Time) -> None:
        poses, twists = self.world.poses(), self.world.twists()
        for (first, last), publisher in zip(self.batches, self.batch_pubs, strict=True):
            publisher.publish(topics.pose_array_cdr(self.world.time, topics.WORLD_FRAME, poses[first + 1:last + 1]))
        for body, publisher in enumerate(self.odom_pubs):
            msg = Odometry()
            msg.header.stamp = now
            msg.header.frame_id = topics.WORLD_FRAME
            msg.child_frame_id = topics.body_frame(body)
            x, y, yaw = poses[body]
            msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
            q = topics.quaternion_from_yaw(float(yaw))
            o = msg.pose.pose.orientation
            o.x, o.y, o.z, o.w = q
            msg.twist.twist.linear.x, msg.twist.twist.angular.z = float(twists[body, 0]), float(twists[body, 1])
            publisher.publish(msg)

    def _publish_markers(self, now: Time) -> None:
        poses, zones = self.world.poses(), self.world.zones()
        robots = Marker()
        robots.header.frame_id, robots.header.stamp = topics.WORLD_FRAME, now
        robots.ns, robots.id, robots.type, robots.action = "robots", 0, Marker.SPHERE_LIST, Marker.ADD
        robots.scale.x = robots.scale.y = robots.scale.z = 2 * self.world_config.robot_radius
        robots.pose.orientation.w = 1.0
        for body in range(1, self.n + 1):
            robots.points.append(Point(x=float(poses[body, 0]), y=float(poses[body, 1]), z=0.05))
            r, g, b = ZONE_COLOURS[int(zones[body]) % len(ZONE_COLOURS)]
            robots.colors.append(ColorRGBA(r=r, g=g, b=b, a=1.0))
        leader = Marker()
        leader.header = robots.header
        leader.ns, leader.id, leader.type, leader.action = "leader", 0, Marker.CYLINDER, Marker.ADD
        leader.pose.position.x = float(poses[0, 0])
        leader.pose.position.y = float(poses[0, 1])
        leader.pose.position.z = 0.15
        leader.pose.orientation.w = 1.0
        leader.scale.x = leader.scale.y = 2 * self.world_config.leader_radius
        leader.scale.z = 0.3
        leader.color.r, leader.color.g, leader.color.b, leader.color.a = 0.86, 0.08, 0.24, 1.0
        self.marker_pub.publish(MarkerArray(markers=[robots, leader]))

    def close(self) -> None:
        self.world.close()


def main(args: list[str] | None = None) -> int:
    return run(lambda: [SimNode()], args)


if __name__ == "__main__":
    raise SystemExit(main())
