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

With `link:=batched` (simulation) a fleet hosts no robot nodes: its host takes one
geometry_msgs/PoseArray of its robots per control tick from the sim, evaluates their
agents and controllers as arrays (`agents.robot_batch.RobotBatch`) and answers with one
command array; decisions go out as one array per step. The coordinator traffic,
heartbeats and the stops on a silent pose source or coordinator are the same.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
from geometry_msgs.msg import PoseArray, PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray

from altmarl_ros import runs
from altmarl_ros.agents.robot_agent import RobotAgent
from altmarl_ros.agents.robot_batch import RobotBatch
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import (
    QUIET_PUB,
    QUIET_SUB,
    declare,
    drop_event_handlers,
    load_world,
    matched_publishers,
    run,
    wall_timer,
    warn_without_clock,
)
from altmarl_ros.nodes.params import FleetParams, RobotParams
from altmarl_ros.sim.controller import ControlGate

RELIABLE_DEPTH = 50
STATUS_PERIOD = 10.0  # wall seconds between a host's "still waiting for ..." lines
HEARTBEAT_SLICES = 10  # a host spreads its robots' heartbeats over (at least) this many ticks per period
HEARTBEAT_BURST = 50  # ... and a batched fleet over enough ticks that one tick sends at most this many

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
        trained = trained or runs.load(params["policy"], expect_task="zones")
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
        self.control_gate = ControlGate(self.control_dt)
        self.pose_topic = self.resolve_topic_name(params["pose_topic"])
        self.last_pose_time: float | None = None
        self.said_pose_silent = False
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
            self.agent.on_pose(*topics.parse_pose(x, y, yaw))
        except ValueError as exc:  # MessageError, or the agent's own check
            self.get_logger().warning(f"ignoring a pose on {self.pose_topic}: {exc}", throttle_duration_sec=5.0)
            return
        self.last_pose_time = self._now()
        if first:
            self.host.announce(self)  # ready: it can answer sample requests now
        # the control rate is gated on the pose's stamp (the time the pose was measured); unstamped poses
        # fall back to the node's clock
        if self.control_gate.due(stamp if stamp > 0.0 else self._now()):
            stop = self.host.coordinator_silent()
            self.publish_cmd(*((0.0, 0.0) if stop else self.agent.cmd_vel(self.control_dt)))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def publish_cmd(self, linear: float, angular: float) -> None:
        msg = Twist()
        msg.linear.x, msg.angular.z = linear, angular
        self.cmd_pub.publish(msg)

    def pose_silent(self, now: float, timeout: float) -> bool:
        """Its pose source has been silent for `timeout` s (after at least one pose)."""
        return self.last_pose_time is not None and now - self.last_pose_time > timeout

    def on_global(self, step: int, global_state: int) -> None:
        try:
            action = self.agent.on_global(step, global_state)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring {topics.GLOBAL} message: {exc}", throttle_duration_sec=5.0)
            return
        if action is not None:
            self.decision_pub.publish(Int32MultiArray(data=[step, int(self.agent.zone), action,
                                                            int(self.agent.destination)]))

    def sample(self, session: int, step: int, requested: np.ndarray) -> list[float] | None:
        """This robot's sample [session, step, id, zone, x, y] if it is among those asked, else None."""
        reply = self.agent.sample_reply(step, requested)
        if reply is None:
            return None
        step, robot_id, zone = reply
        x, y = self.agent.pose[:2]
        return topics.sample_data(session, step, robot_id, zone, x, y)


class RobotHost(Node):
    """The process's main node: parameters, the coordinator traffic of the robots it hosts, heartbeats."""

    def __init__(self, name: str = "fleet", params: type = FleetParams) -> None:
        super().__init__(name)
        self.values = declare(self, params)
        self.robots: dict[int, RobotNode] = {}
        self.sample_pub = self.create_publisher(Float64MultiArray, topics.SAMPLES, RELIABLE_DEPTH)
        self.heartbeat_pub = self.create_publisher(Int32, topics.HEARTBEAT, 10 * RELIABLE_DEPTH)
        self.global_sub = self.create_subscription(Int32MultiArray, topics.GLOBAL, self._on_global, RELIABLE_DEPTH)
        self.request_sub = self.create_subscription(Int32MultiArray, topics.SAMPLE_REQUEST, self._on_request,
                                                    RELIABLE_DEPTH)
        self.tick = 0
        self.heard_coordinator = False
        self.follower = topics.SessionFollower()
        self.malformed = 0
        self.last_coordinator: float | None = None
        self.said_coordinator_silent = False
        self.trained = runs.load(self.values["policy"], expect_task="zones")
        self.world = load_world(self.values["world_config"], self.trained.game.num_local_states)
        self.game, self.n = self.trained.game, self.values["n"]
        self.coordinator_timeout = self.values["coordinator_timeout"] or 3 * self.world.decision_period
        if not (self.values["pose_timeout"] > 0 and self.coordinator_timeout > 0):
            raise AltmarlError("pose_timeout and coordinator_timeout must be > 0 s (coordinator_timeout 0: three "
                               "decision periods)")
        self.batch: RobotBatch | None = None
        if self.values["link"] not in topics.LINKS:
            raise AltmarlError(f"link must be one of {list(topics.LINKS)}, got {self.values['link']!r}")
        if self.values["link"] == "batched":
            if "robot_id" in self.values:
                raise AltmarlError("link:=batched is for fleet processes in simulation; a robot_node (one robot per "
                                   "computer) uses its own pose and command topics")
            self._start_batch()
        self.heartbeat_slices = HEARTBEAT_SLICES if self.batch is None else max(
            HEARTBEAT_SLICES, math.ceil(len(self.batch) / HEARTBEAT_BURST))
        self.failed_heartbeats = 0
        self.create_timer(self.values["heartbeat_period"] / self.heartbeat_slices, self._heartbeats)
        self.create_timer(self.world.control_dt, self._watch)
        warn_without_clock(self)
        wall_timer(self, STATUS_PERIOD, self._say_what_it_waits_for)

    # --- the batched link: one pose array in, one command array out ---------------------------
    def _start_batch(self) -> None:
        first, last = self.values["first_robot"], self.values["last_robot"]
        last = self.n if last < 0 else last
        self.batch = RobotBatch(first, last, self.n, self.game.with_n(self.n), self.trained.local_policy,
                                self.world, self.values["seed"])
        self.batch_pose_topic = topics.batch_topic(first, last, "poses")
        self.batch_cmd_pub = self.create_publisher(Float64MultiArray, topics.batch_topic(first, last, "cmd_vel"), 10)
        self.batch_decision_pub = self.create_publisher(Int32MultiArray, topics.batch_topic(first, last, "decisions"),
                                                        10)
        # raw: the CDR bytes, parsed with numpy (topics.parse_pose_array_cdr), not thousands of Pose objects
        self.create_subscription(PoseArray, self.batch_pose_topic, self._on_batch_poses, 10, raw=True)
        self.last_batch_pose: float | None = None
        self.batch_gate = ControlGate(self.world.control_dt)
        self.said_batch_silent = False

    def _on_batch_poses(self, data: bytes) -> None:
        batch = self.batch
        try:
            stamp, poses = topics.parse_pose_array_cdr(data, len(batch))
        except topics.MessageError as exc:
            self._drop(f"pose array on {self.batch_pose_topic} (robots {batch.first}..{batch.last - 1})", exc)
            return
        first = not batch.has_pose
        batch.on_poses(poses)
        self.last_batch_pose = self._now()
        if first:
            for robot_id in batch.ids:
                self.announce_id(int(robot_id))
        if self.batch_gate.due(stamp if stamp > 0.0 else self._now()):
            stop = self.coordinator_silent()
            command = np.zeros((len(batch), 2)) if stop else batch.cmd_vel(self.world.control_dt)
            self.batch_cmd_pub.publish(Float64MultiArray(data=array("d", command.ravel())))

    def _hosted_count(self) -> int:
        return len(self.batch) if self.batch is not None else len(self.robots)

    def _hosted(self) -> list[tuple[int, bool]]:
        """(robot id, has a pose) of every robot this process hosts, on either link."""
        if self.batch is not None:
            return [(int(i), self.batch.has_pose) for i in self.batch.ids]
        return [(robot_id, robot.agent.pose is not None) for robot_id, robot in self.robots.items()]

    def _say_what_it_waits_for(self) -> None:
        """Name what keeps its robots from acting (no pose, no coordinator, no broadcast yet), throttled."""
        hosted = self._hosted()
        if not hosted:
            return
        without_pose = [i for i, has_pose in hosted if not has_pose]
        if without_pose and self.batch is not None:
            self.get_logger().warning(f"no pose array yet on {self.batch_pose_topic}: the {len(hosted)} robots "
                                      "publish nothing until the sim publishes it (link:=batched)")
        elif without_pose:
            first = self.robots[without_pose[0]]
            topic = first.pose_topic
            self.get_logger().warning(
                f"{len(without_pose)} of {len(hosted)} robots have no pose yet (e.g. robot {without_pose[0]} "
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
        if robot.agent.pose is not None:
            self.announce_id(robot.robot_id)

    def announce_id(self, robot_id: int) -> None:
        if self.connected():
            self._heartbeat(robot_id)

    def _heartbeat(self, robot_id: int) -> None:
        """One heartbeat; a middleware refusal (e.g. a reliable queue that stays full) is logged, never fatal:
        the next period sends it again, and only missed requests or a long silence make a robot dead."""
        try:
            self.heartbeat_pub.publish(Int32(data=robot_id))
        except RuntimeError as exc:  # rclpy's RCLError
            self.failed_heartbeats += 1
            self.get_logger().warning(f"could not publish a heartbeat ({self.failed_heartbeats} so far): {exc}",
                                      throttle_duration_sec=10.0)

    def _heartbeats(self) -> None:
        """Every robot with a pose, once per heartbeat period, spread over heartbeat_slices ticks."""
        slice_ = self.tick % self.heartbeat_slices
        self.tick += 1
        if not self.connected():
            return
        if self.batch is not None:  # this tick's slice of the batch, without a list of every robot
            for robot_id in (self.batch.ids[slice_::self.heartbeat_slices] if self.batch.has_pose else ()):
                self._heartbeat(int(robot_id))
            return
        for index, (robot_id, has_pose) in enumerate(self._hosted()):
            if index % self.heartbeat_slices == slice_ and has_pose:
                self._heartbeat(robot_id)

    def _drop(self, what: str, exc: topics.MessageError) -> None:
        self.malformed += 1
        self.get_logger().warning(f"dropped a {what}: {exc} ({self.malformed} dropped so far)",
                                  throttle_duration_sec=5.0)

    def _on_global(self, msg: Int32MultiArray) -> None:
        try:
            session, step, global_state, _ = topics.parse_global(msg.data, self.game.num_global_states,
                                                                 self.game.num_global_actions)
        except topics.MessageError as exc:
            self._drop(f"broadcast on {topics.GLOBAL}", exc)
            return
        self.last_coordinator = self._now()
        switches = self.follower.switches
        if not self.follower.accept(session, step):
            self.get_logger().info(f"dropped {self.follower.dropped} repeated broadcasts so far (session {session}, "
                                   f"step {step} <= {self.follower.last_step})", throttle_duration_sec=10.0)
            return
        if self.follower.switches > switches:
            self.get_logger().info(f"following coordinator session {session} from its step {step}")
        self.heard_coordinator = True
        if self.batch is not None:
            decisions = self.batch.on_global(step, global_state)
            if decisions:
                self.batch_decision_pub.publish(Int32MultiArray(data=topics.batch_decisions_data(step, decisions)))
        for robot in self.robots.values():
            robot.on_global(step, global_state)

    def _on_request(self, msg: Int32MultiArray) -> None:
        try:
            session, step, ids = topics.parse_request(msg.data, self.n)
        except topics.MessageError as exc:
            self._drop(f"sample request on {topics.SAMPLE_REQUEST}", exc)
            return
        self.last_coordinator = self._now()
        requested = np.asarray(ids, dtype=np.int64)
        if self.batch is not None:
            for step_, robot_id, zone, x, y in self.batch.sample_replies(step, requested):
                data = topics.sample_data(session, step_, robot_id, zone, x, y)
                self.sample_pub.publish(Float64MultiArray(data=data))
        for robot_id in dict.fromkeys(ids):  # each asked robot answers once
            robot = self.robots.get(robot_id)
            if robot is None:
                continue
            data = robot.sample(session, step, requested)
            if data is not None:
                self.sample_pub.publish(Float64MultiArray(data=data))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _watch_batch(self, now: float) -> None:
        """No pose array for pose_timeout: every robot of the batch stops (zero velocity), said once."""
        silent = self.last_batch_pose is not None and now - self.last_batch_pose > self.values["pose_timeout"]
        if silent:
            self.batch_cmd_pub.publish(Float64MultiArray(data=array("d", bytes(16 * len(self.batch)))))
        if silent != self.said_batch_silent:
            self.said_batch_silent = silent
            if silent:
                self.get_logger().warning(f"no pose array on {self.batch_pose_topic} for "
                                          f"{self.values['pose_timeout']:.1f} s: {len(self.batch)} robots stopped "
                                          "(zero velocity) until it is back")

    def coordinator_silent(self) -> bool:
        """Heard from a coordinator once, and not for coordinator_timeout since: robots stop."""
        return self.last_coordinator is not None and self._now() - self.last_coordinator > self.coordinator_timeout

    def _watch(self) -> None:
        """A robot stops by itself (zero velocity, said once) when its pose source or the coordinator falls
        silent; on hardware a base otherwise keeps driving with its last command."""
        now = self._now()
        silent = self.coordinator_silent()
        if silent != self.said_coordinator_silent:
            self.said_coordinator_silent = silent
            if silent:
                self.get_logger().warning(f"no coordinator message for {self.coordinator_timeout:.1f} s: "
                                          f"stopping {self._hosted_count()} robots until it is back")
            else:
                self.get_logger().info("the coordinator is back: robots move again")
        if self.batch is not None:
            self._watch_batch(now)
        for robot in self.robots.values():
            pose_silent = robot.pose_silent(now, self.values["pose_timeout"])
            if pose_silent:
                robot.publish_cmd(0.0, 0.0)  # no pose: the pose callback that commands it does not run
            if pose_silent != robot.said_pose_silent:
                robot.said_pose_silent = pose_silent
                if pose_silent:
                    robot.get_logger().warning(f"no pose on {robot.pose_topic} for {self.values['pose_timeout']:.1f} "
                                               "s: stopped (zero velocity) until it is back")


def make_fleet() -> list[Node]:
    host = RobotHost()
    p = host.values
    last = p["n"] if p["last_robot"] < 0 else p["last_robot"]
    if host.batch is not None:
        host.get_logger().info(f"hosting robots {p['first_robot']}..{last - 1} on the batched link "
                               f"({host.batch_pose_topic})")
        return [host]
    for i in range(p["first_robot"], last):
        host.add(RobotNode(i, p, host, host.trained, host.world))
    host.get_logger().info(f"hosting robots {p['first_robot']}..{last - 1} on one executor")
    return [host, *host.robots.values()]


def make_robot() -> list[Node]:
    host = RobotHost("robot", RobotParams)
    robot_id = host.values["robot_id"]
    robot = host.add(RobotNode(robot_id, host.values, host, host.trained, host.world, lean=False))
    return [host, robot]


def main_fleet(args: list[str] | None = None) -> int:
    return run(make_fleet, args)


def main(args: list[str] | None = None) -> int:
    return run(make_robot, args)


if __name__ == "__main__":
    raise SystemExit(main())
