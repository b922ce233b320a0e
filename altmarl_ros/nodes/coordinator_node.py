"""coordinator_node: the global agent on ROS 2 topics.

Each decision period: draw a fresh uniform k-subset of the robots it knows to be
alive, publish the request, wait at most `reply_timeout` for their replies,
act with pi_g on the count vector, steer the leader to its target zone,
broadcast (step, s_g, a_g). With learn:=true the Q table is updated online
(epsilon-greedy) and saved every `save_every` steps and on shutdown; restarted
with the same `checkpoint_out`, it resumes that Q table. Publishes comm
statistics (JSON on /altmarl/stats) and markers (zones, the k sampled robots,
the leader's target, a text line).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import Point, PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray, String
from visualization_msgs.msg import Marker, MarkerArray

from altmarl_ros import runs
from altmarl_ros.agents.coordinator import Coordinator, online_learner
from altmarl_ros.marl.checkpoint import (
    load_checkpoint,
    resolve_path,
)
from altmarl_ros.marl.errors import AltmarlError, CheckpointError
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import (
    declare,
    load_world,
    matched_publishers,
    run,
    wall_timer,
    warn_without_clock,
)
from altmarl_ros.nodes.params import COORDINATOR_DYNAMIC, CoordinatorParams
from altmarl_ros.nodes.sim_node import ZONE_COLOURS
from altmarl_ros.sim.config import zone_centres, zone_of
from altmarl_ros.sim.controller import ControlGate, GoToController
from altmarl_ros.sim.moves import leader_destination

HEARTBEAT_DEPTH = 10_000  # a few hundred KiB at most
HEARTBEAT_PERIOD = 2.0  # s: the robot hosts' default heartbeat_period
FLOOD_FACTOR, FLOOD_MIN_RATE, FLOOD_CALM_SECONDS = 20, 100, 10  # heartbeats/s above max(100, 20 x n / period)
WAITING_WARNING_PERIOD = 10.0  # wall seconds between "still waiting for ..." lines before the first step
FINAL_ACK_SECONDS = 3.0  # wall seconds the last step's broadcast and statistics may take to be acknowledged


class CoordinatorNode(Node):
    def __init__(self) -> None:
        super().__init__("coordinator")
        p = self.params = declare(self, CoordinatorParams, COORDINATOR_DYNAMIC, self._on_parameter)
        if p["leader_pose_type"] not in ("odometry", "pose_stamped"):
            raise AltmarlError(f"leader_pose_type must be 'odometry' or 'pose_stamped', got {p['leader_pose_type']!r}")
        trained = runs.load(p["policy"], expect_task="zones")
        self.trained = trained
        self.world = load_world(p["world_config"], trained.game.num_local_states)
        self.game = trained.game.with_n(p["n"])
        self.rng = np.random.default_rng([p["seed"], 1_000_003])
        k = p["k"] or trained.k  # the policy's unless given (the Coordinator refuses another)
        learner = None
        self.checkpoint_out = Path(p["checkpoint_out"]) if p["checkpoint_out"] else None
        self.failed_saves = 0
        if p["learn"]:
            resume = None
            if self.checkpoint_out is not None and resolve_path(self.checkpoint_out).exists():
                resume = load_checkpoint(self.checkpoint_out)
                self.get_logger().info(f"resuming the Q table saved in {resolve_path(self.checkpoint_out)}")
            learner = online_learner(self.game, k, p["seed"], trained.global_q, resume, p["epsilon"],
                                     p["learning_rate"])
        self.coordinator = Coordinator(self.game, k, trained.global_policy, trained.local_policy, self.rng,
                                       learner=learner, max_missed=p["max_missed"],
                                       liveness_timeout=p["liveness_timeout"], assume_alive=False,
                                       session=topics.new_session())
        self.centres = zone_centres(self.world)
        self.leader_controller = GoToController(np.array([self.world.leader_radius]), self.world.max_linear,
                                                self.world.max_angular)
        self.leader_pose: np.ndarray | None = None
        self.leader_target: int | None = None
        self.leader_gate = ControlGate(self.world.control_dt)
        self.next_decision: float | None = None
        self.deadline: float | None = None
        self.asked = np.zeros(0, dtype=np.int64)
        self.sampled_positions: dict[int, tuple[float, float]] = {}
        self.started: float | None = None

        self.request_pub = self.create_publisher(Int32MultiArray, topics.SAMPLE_REQUEST, 50)
        self.global_pub = self.create_publisher(Int32MultiArray, topics.GLOBAL, 50)
        self.leader_cmd_pub = self.create_publisher(Twist, f"/{topics.LEADER}/{p['leader_cmd_topic'].lstrip('/')}",
                                                    10)
        self.stats_pub = self.create_publisher(String, topics.STATS, 10)
        self.marker_pub = self.create_publisher(MarkerArray, topics.MARKERS, 10)
        self.sample_sub = self.create_subscription(Float64MultiArray, topics.SAMPLES, self._on_sample, 200)
        # deep enough that a flood of forged heartbeats does not push the real ones out before they are read
        self.create_subscription(Int32, topics.HEARTBEAT, self._on_heartbeat, HEARTBEAT_DEPTH)
        self.leader_pose_topic = f"/{topics.LEADER}/{p['leader_pose_topic'].lstrip('/')}"
        if p["leader_pose_type"] == "pose_stamped":
            self.create_subscription(PoseStamped, self.leader_pose_topic,
                                     lambda m: self._on_leader_pose(m.pose), 10)
        else:
            self.create_subscription(Odometry, self.leader_pose_topic, lambda m: self._on_leader_pose(m.pose.pose), 10)
        self.create_timer(p["tick"], self._tick)
        self.heartbeats_this_second = 0
        self.flood_quiet_seconds = 0
        wall_timer(self, 1.0, self._watch_heartbeat_rate)
        warn_without_clock(self)
        self.waiting_timer = wall_timer(self, WAITING_WARNING_PERIOD, self._say_what_it_waits_for)
        self.get_logger().info(f"coordinator: n={p['n']}, k={k}, decision every {self.world.decision_period}s, "
                               f"learning {'on' if learner else 'off'}, session {self.coordinator.session}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_parameter(self, name: str, value) -> str | None:
        """Apply a `ros2 param set` of one of COORDINATOR_DYNAMIC; a refusal says what is valid."""
        if name == "epsilon" and not 0.0 <= value <= 1.0:
            return "epsilon must lie in [0, 1]"
        if name == "learning_rate" and not 0.0 <= value <= 1.0:
            return "learning_rate must lie in [0, 1] (0: 1/(1+visits)^0.8)"
        if name in ("reply_timeout", "liveness_timeout") and not value > 0:
            return f"{name} must be > 0 seconds"
        if name in ("max_missed", "save_every") and value < 1:
            return f"{name} must be >= 1"
        learner = self.coordinator.learner if hasattr(self, "coordinator") else None
        if name == "epsilon" and learner is not None:
            learner.epsilon = value
        elif name == "learning_rate" and learner is not None:
            learner.learning_rate = value or None
        elif name in ("max_missed", "liveness_timeout") and hasattr(self, "coordinator"):
            setattr(self.coordinator, name, value)
        self.get_logger().info(f"parameter {name} set to {value}")
        return None

    def _say_what_it_waits_for(self) -> None:
        """Before the first step, name what is missing, so a silent graph is not a mystery."""
        if self.next_decision is not None:
            self.waiting_timer.cancel()
            return
        if self.leader_pose is None:
            self.get_logger().warning(
                f"waiting for the leader's pose on {self.leader_pose_topic} ({self.params['leader_pose_type']}): no "
                "decision step starts without it (the leader's zone is the global state). Publish it (the sim "
                "does; on hardware the leader's driver or motion capture), or remap leader_pose_topic.")
        else:
            known = len(self.coordinator.alive())
            self.get_logger().warning(
                f"waiting for robots: {known} of the k={self.coordinator.k} needed have announced themselves on "
                f"{topics.HEARTBEAT} (robots announce once they have a pose and see this coordinator)")

    # --- leader ------------------------------------------------------------------------------
    def _drop(self, what: str, exc: topics.MessageError) -> None:
        """Count and log (throttled, without the payload) a message that is not what the protocol says."""
        self.coordinator.stats.malformed += 1
        self.get_logger().warning(f"dropped a {what}: {exc} ({self.coordinator.stats.malformed} dropped so far)",
                                  throttle_duration_sec=5.0)

    def _on_heartbeat(self, msg: Int32) -> None:
        self.heartbeats_this_second += 1
        try:
            robot_id = topics.parse_heartbeat(msg.data, self.game.n)
        except topics.MessageError as exc:
            self._drop(f"heartbeat on {topics.HEARTBEAT}", exc)
            return
        self.coordinator.heard_from(robot_id, self._now())

    def _watch_heartbeat_rate(self) -> None:
        """Far more heartbeats than n robots send (a flood, hostile or buggy) means real ones are lost in the
        queue: silence then proves nothing, and robots are presumed dead only by missed requests until the
        rate has been normal for FLOOD_CALM_SECONDS."""
        rate, self.heartbeats_this_second = self.heartbeats_this_second, 0
        expected = self.game.n / HEARTBEAT_PERIOD
        flooded = rate > max(FLOOD_MIN_RATE, FLOOD_FACTOR * expected)
        self.flood_quiet_seconds = 0 if flooded else self.flood_quiet_seconds + 1
        if flooded and self.coordinator.silence_counts:
            self.coordinator.silence_counts = False
            self.get_logger().warning(f"heartbeat flood: {rate} messages/s on {topics.HEARTBEAT}, about "
                                      f"{expected:.0f}/s expected; silence no longer presumes robots dead (missed "
                                      "requests still do) until it is over")
        elif not self.coordinator.silence_counts and self.flood_quiet_seconds >= FLOOD_CALM_SECONDS:
            self.coordinator.silence_counts = True
            self.get_logger().info("heartbeat flood over; silence for liveness_timeout presumes robots dead again")

    def _on_leader_pose(self, pose) -> None:
        p, o = pose.position, pose.orientation
        try:
            x, y, yaw = topics.parse_pose(p.x, p.y, topics.yaw_from_quaternion(o.z, o.w, o.x, o.y))
        except topics.MessageError as exc:
            self._drop(f"leader pose on {self.leader_pose_topic}", exc)
            return
        self.leader_pose = np.array([x, y, yaw])
        now = self._now()
        if self.leader_target is None or not self.leader_gate.due(now):
            return
        target = self.centres[self.leader_target][None, :]
        linear, angular = self.leader_controller(self.leader_pose[None, :], target, self.world.control_dt)
        cmd = Twist()
        cmd.linear.x, cmd.angular.z = float(linear[0]), float(angular[0])
        self.leader_cmd_pub.publish(cmd)

    # --- decision steps ------------------------------------------------------------------------
    def _on_sample(self, msg: Float64MultiArray) -> None:
        try:
            session, step, robot_id, zone, x, y = topics.parse_sample(msg.data, self.game.n,
                                                                      self.game.num_local_states)
        except topics.MessageError as exc:
            self._drop(f"sample on {topics.SAMPLES}", exc)
            return
        if self.coordinator.on_reply(step, robot_id, zone, session=session, now=self._now()):
            self.sampled_positions[robot_id] = (x, y)

    def _tick(self) -> None:
        if self.leader_pose is None:
            return
        now = self._now()
        if self.next_decision is None and not self._ready(now):
            return
        if self.deadline is None:
            if self.next_decision is None or now >= self.next_decision:
                self._begin(now)
        elif now >= self.deadline or self.coordinator.stats.replies_now >= len(self.asked):
            self._finish(now)

    def _ready(self, now: float) -> bool:
        """Before the first step: k robots announced and DDS has matched the request and sample topics here
        (a reliable message to an unmatched reader is simply lost). A robot's host announces it only once
        the host is matched with this node's request and broadcast topics (see robot_node.RobotHost). With
        `expected_listeners` (the launch plan sets it to its fleet processes plus the recorder), the broadcast
        must also be matched with that many processes, so none of them misses the first steps."""
        self.started = now if self.started is None else self.started
        self.coordinator.now = now
        known = len(self.coordinator.alive())
        matched = min(self.request_pub.get_subscription_count(), matched_publishers(self, self.sample_sub))
        listeners = self.global_pub.get_subscription_count()
        if known >= self.coordinator.k and matched >= 1 and listeners >= self.params["expected_listeners"]:
            return True
        if now - self.started >= self.params["startup_timeout"]:
            self.get_logger().warning(f"starting after {self.params['startup_timeout']} s with {known} robots known "
                                      f"and {matched} matched, {listeners} of {self.params['expected_listeners']} "
                                      "listeners on the broadcast")
            return True
        return False

    def _begin(self, now: float) -> None:
        leader_zone = int(zone_of(self.world, self.leader_pose[None, :2])[0])
        step, self.asked = self.coordinator.begin_step(leader_zone, now)
        self.alive_at_begin = len(self.coordinator.alive())  # asked = min(k, alive): the protocol's promise
        self.sampled_positions = {}
        self.request_pub.publish(Int32MultiArray(data=topics.request_data(self.coordinator.session, step,
                                                                           self.asked.tolist())))
        self.deadline = now + self.params["reply_timeout"]
        self.next_decision = (self.next_decision or now) + self.world.decision_period

    def _finish(self, now: float) -> None:
        decision = self.coordinator.finish_step()
        self.deadline = None
        g, a = decision.global_state, decision.global_action
        self.leader_target = leader_destination(self.rng, self.game, self.world.transition_noise, g, a)
        self.global_pub.publish(Int32MultiArray(data=topics.global_data(self.coordinator.session, decision.step, g, a)))
        stats = {**self.coordinator.stats.as_dict(), "session": self.coordinator.session, "step": decision.step,
                 "global_state": g, "global_action": a, "asked": len(self.asked), "alive": self.alive_at_begin,
                 "k_effective": decision.k_effective, "counts": decision.counts.tolist(),
                 "reward_estimate": decision.reward_estimate, "td_error": decision.td_error,
                 "leader_target": self.leader_target, "time": now}
        self.stats_pub.publish(String(data=json.dumps(stats)))
        self._publish_markers(decision)
        if decision.k_effective < len(self.asked):
            self.get_logger().info(f"step {decision.step}: {decision.k_effective}/{len(self.asked)} replies in time")
        dead = self.coordinator.dead()
        silent = dead[~np.isnan(self.coordinator.last_heard[dead])]
        if len(silent):
            self.get_logger().warning(f"robots presumed dead (not sampled): {silent.tolist()}",
                                      throttle_duration_sec=10.0)
        if len(silent) < len(dead):
            self.get_logger().info(f"{len(dead) - len(silent)} robots not heard from yet (not sampled)",
                                   throttle_duration_sec=30.0)
        if self.coordinator.learner is not None and decision.step % self.params["save_every"] == 0:
            self.save()
        steps = self.params["decision_steps"]
        if steps and decision.step >= steps:
            self.get_logger().info(f"{steps} decision steps done; shutting down")
            self.save()
            self._deliver_last_messages()
            rclpy.try_shutdown()

    def _deliver_last_messages(self) -> None:
        """Exiting right after publishing can lose the last broadcast and statistics (the writer's history
        goes with the process); wait, bounded, until every matched reader has acknowledged them."""
        timeout = Duration(seconds=FINAL_ACK_SECONDS)
        for publisher in (self.global_pub, self.stats_pub):
            if not publisher.wait_for_all_acked(timeout):
                self.get_logger().warning(f"not every reader acknowledged the last message on {publisher.topic_name} "
                                          f"within {FINAL_ACK_SECONDS} s")

    def _publish_markers(self, decision) -> None:
        markers = []
        stamp = self.get_clock().now().to_msg()

        def marker(ns: str, index: int, kind: int) -> Marker:
            m = Marker()
            m.header.frame_id, m.header.stamp = topics.WORLD_FRAME, stamp
            m.ns, m.id, m.type, m.action = ns, index, kind, Marker.ADD
            m.pose.orientation.w = 1.0
            return m

        for z, centre in enumerate(self.centres):
            m = marker("zones", z, Marker.CYLINDER)
            m.pose.position.x, m.pose.position.y = float(centre[0]), float(centre[1])
            m.scale.x = m.scale.y = 2 * self.world.zone_radius
            m.scale.z = 0.01 if z != self.leader_target else 0.03
            r, g, b = ZONE_COLOURS[z % len(ZONE_COLOURS)]
            m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, 0.35 if z == self.leader_target else 0.15
            markers.append(m)
        sampled = marker("sampled", 0, Marker.SPHERE_LIST)
        sampled.scale.x = sampled.scale.y = sampled.scale.z = 0.3
        sampled.color.a = 0.6
        sampled.points = [Point(x=float(x), y=float(y), z=0.2) for x, y in self.sampled_positions.values()]
        if not sampled.points:
            sampled.action = Marker.DELETE  # nothing sampled: remove last step's rings (an empty list is invalid)
        markers.append(sampled)
        text = marker("status", 0, Marker.TEXT_VIEW_FACING)
        text.pose.position.z = 1.5
        text.scale.z = 0.35
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
        text.text = (f"step {decision.step}  k={self.coordinator.k} (replied {decision.k_effective})  "
                     f"a_g={decision.global_action}  reward est. {decision.reward_estimate:.2f}")
        markers.append(text)
        self.marker_pub.publish(MarkerArray(markers=markers))

    def save(self) -> None:
        """Write the online Q table; a failure (full disk, a vanished directory) is logged and retried at the
        next save while the node keeps stepping: robots must not stop because a disk filled up."""
        if self.coordinator.learner is None or self.checkpoint_out is None:
            return
        target = self.checkpoint_out
        try:
            path = runs.save_online(target, self.trained, self.coordinator.learner, self.coordinator.q_values,
                                    self.coordinator.step)
        except (OSError, CheckpointError) as exc:
            self.failed_saves += 1
            self.get_logger().error(f"could not save the online Q table to {target} ({exc}); still stepping, "
                                    f"retrying at the next save ({self.failed_saves} failed so far)",
                                    throttle_duration_sec=10.0)
            return
        if self.failed_saves:
            self.get_logger().info(f"saved the online Q table to {path} after {self.failed_saves} failed saves")
            self.failed_saves = 0
        else:
            self.get_logger().info(f"saved the online Q table to {path}")

    def close(self) -> None:
        self.save()


def main(args: list[str] | None = None) -> int:
    return run(lambda: [CoordinatorNode()], args)


if __name__ == "__main__":
    raise SystemExit(main())
