"""A passive observer of a running system, for `altmarl sim`'s summary and the integration tests.

It is not part of the control loop and not subject to the coordinator's
k-robot limit: it reads the coordinator's broadcasts and statistics, counts the
sample traffic per step, reads every robot's position from the simulator's
markers and every robot's decision, and scores the run as the task does. A
message that is not what the protocol says is counted (`RunLog.malformed`) and
dropped: one message never ends `altmarl sim`.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, Int32MultiArray, String
from visualization_msgs.msg import MarkerArray

from altmarl_ros.marl.game import TabularGame
from altmarl_ros.nodes import topics
from altmarl_ros.nodes.common import QUIET_SUB
from altmarl_ros.sim.config import WorldConfig, zone_of


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number the coordinator sends")


MAX_STATS_CHARACTERS = 1 << 20  # the coordinator's JSON is a few hundred characters per robot asked


@dataclass
class StepRecord:
    step: int
    global_state: int
    global_action: int
    k_effective: int
    population_zones: np.ndarray | None
    sim_time: float = float("nan")  # the coordinator's clock at the step's end
    wall_time: float = float("nan")  # time.monotonic() when the monitor received it
    asked: int = -1  # robots asked this step (min(k, alive); -1: not reported)
    alive: int = -1  # robots the coordinator held alive when it drew them


@dataclass
class RunLog:
    steps: list[StepRecord] = field(default_factory=list)
    requested: dict[int, list[int]] = field(default_factory=dict)
    samples_per_step: Counter = field(default_factory=Counter)
    decisions: dict[int, dict[int, tuple[int, int, int]]] = field(default_factory=lambda: defaultdict(dict))
    last_stats: dict = field(default_factory=dict)
    malformed: int = 0  # messages dropped because they are not what the protocol says
    decisions_per_step: Counter = field(default_factory=Counter)  # robots' decisions received, by step

    def real_time_factor(self) -> float:
        """Simulated seconds per wall second between the first and the last step seen (NaN under two steps)."""
        if len(self.steps) < 2:
            return float("nan")
        first, last = self.steps[0], self.steps[-1]
        wall = last.wall_time - first.wall_time
        return (last.sim_time - first.sim_time) / wall if wall > 0 else float("nan")


class MonitorNode(Node):
    def __init__(self, n: int, world: WorldConfig, batches: list[tuple[int, int]] | None = None,
                 on_stats: Callable[[StepRecord, dict], None] | None = None) -> None:
        """`batches`: the fleets' robot ranges on the batched link (their decisions come one array per fleet);
        `on_stats(record, stats)` is called for every step's statistics the monitor accepts."""
        super().__init__("altmarl_monitor")
        self.n, self.world = n, world
        self._on_stats_accepted = on_stats
        self.log = RunLog()
        self.latest_zones: np.ndarray | None = None
        self.create_subscription(String, topics.STATS, self._on_stats, 100)
        self.create_subscription(Int32MultiArray, topics.SAMPLE_REQUEST, self._on_request, 100)
        self.create_subscription(Float64MultiArray, topics.SAMPLES, self._on_sample, 500)
        self.create_subscription(MarkerArray, topics.MARKERS, self._on_markers, 10)
        for first, last in batches or []:
            self.create_subscription(Int32MultiArray, topics.batch_topic(first, last, "decisions"),
                                     self._on_batch_decisions, 10)
        for i in range(n if not batches else 0):
            self.create_subscription(Int32MultiArray, f"/{topics.robot_namespace(i)}/decision",
                                     lambda m, robot=i: self._on_decision(robot, m), 10, event_callbacks=QUIET_SUB)

    def _drop(self, what: str, reason: str) -> None:
        self.log.malformed += 1
        self.get_logger().warning(f"dropped a {what}: {reason} ({self.log.malformed} so far)",
                                  throttle_duration_sec=5.0)

    def _on_markers(self, msg: MarkerArray) -> None:
        for marker in msg.markers:
            if marker.ns == "robots" and len(marker.points) == self.n:
                xy = np.array([[p.x, p.y] for p in marker.points])
                if not np.all(np.isfinite(xy)):
                    self._drop(f"marker array on {topics.MARKERS}", "robot positions are not finite")
                    return
                self.latest_zones = zone_of(self.world, xy)

    def _on_request(self, msg: Int32MultiArray) -> None:
        try:
            _, step, ids = topics.parse_request(msg.data, self.n)
        except topics.MessageError as exc:
            self._drop(f"sample request on {topics.SAMPLE_REQUEST}", str(exc))
            return
        self.log.requested[step] = ids

    def _on_sample(self, msg: Float64MultiArray) -> None:
        try:
            _, step, *_ = topics.parse_sample(msg.data, self.n, self.world.zones)
        except topics.MessageError as exc:
            self._drop(f"sample on {topics.SAMPLES}", str(exc))
            return
        self.log.samples_per_step[step] += 1

    def _on_decision(self, robot: int, msg: Int32MultiArray) -> None:
        if len(msg.data) != 4:
            self._drop(f"decision of robot {robot}", f"length {len(msg.data)}; expected [step, zone, action, "
                                                    "destination]")
            return
        step, zone, action, destination = (int(v) for v in msg.data)
        self.log.decisions[step][robot] = (zone, action, destination)
        self.log.decisions_per_step[step] += 1

    def _on_batch_decisions(self, msg: Int32MultiArray) -> None:
        try:
            step, rows = topics.parse_batch_decisions(msg.data, self.n)
        except topics.MessageError as exc:
            self._drop("batched decisions", str(exc))
            return
        for robot, zone, action, destination in rows:
            self.log.decisions[step][robot] = (zone, action, destination)
        self.log.decisions_per_step[step] += len(rows)

    def _on_stats(self, msg: String) -> None:
        if len(msg.data) > MAX_STATS_CHARACTERS:
            self._drop(f"statistics message on {topics.STATS}", f"{len(msg.data)} characters, more than "
                                                                f"{MAX_STATS_CHARACTERS}")
            return
        try:
            stats = json.loads(msg.data, parse_constant=_refuse_constant)
            zones = self.world.zones
            record = StepRecord(topics.parse_count(stats["step"], "step", 1, topics.MAX_SESSION),
                                topics.parse_count(stats["global_state"], "global state", 0, zones - 1),
                                topics.parse_count(stats["global_action"], "global action", 0, zones - 1),
                                topics.parse_count(stats["k_effective"], "k_effective", 0, self.n),
                                None, float(stats.get("time", 0.0)), time.monotonic(),
                                topics.parse_count(stats.get("asked", -1), "asked", -1, self.n),
                                topics.parse_count(stats.get("alive", -1), "alive", -1, self.n))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, OverflowError) as exc:
            reason = str(exc) if isinstance(exc, topics.MessageError) else type(exc).__name__
            self._drop(f"statistics message on {topics.STATS}", f"not the coordinator's statistics ({reason})")
            return
        self.log.last_stats = stats
        record.population_zones = None if self.latest_zones is None else self.latest_zones.copy()
        self.log.steps.append(record)
        if self._on_stats_accepted is not None:
            self._on_stats_accepted(record, stats)


@dataclass
class RunSummary:
    steps: int
    discounted_return: float
    mode_accuracy: float
    samples_per_step_mean: float
    samples_per_step_max: int
    decisions_honoured: float  # robots found in their chosen destination at the next decision


def summarise(log: RunLog, game: TabularGame, local_policy: np.ndarray) -> RunSummary:
    """Score the run as the zones task does, from the population's zones at each decision."""
    expected_local = game.expected_local_reward(local_policy)  # (L, G)
    total, discount, hits, scored = 0.0, 1.0, 0, 0
    for record in log.steps:
        if record.population_zones is None:
            continue
        g, a, zones = record.global_state, record.global_action, record.population_zones
        total += discount * (game.global_reward[g, a] + expected_local[zones, g].mean())
        hits += int(a == np.argmax(np.bincount(zones, minlength=game.num_local_states)))
        discount *= game.gamma
        scored += 1
    by_step = {r.step: r.population_zones for r in log.steps}
    honoured, checked = 0, 0
    for step, chosen in log.decisions.items():
        later = by_step.get(step + 1)
        if later is None:
            continue
        for robot, (_, _, destination) in chosen.items():
            honoured += int(later[robot] == destination)
            checked += 1
    counts = [log.samples_per_step[s] for s in log.requested]
    return RunSummary(len(log.steps), total, hits / max(scored, 1), float(np.mean(counts)) if counts else 0.0,
                      max(counts, default=0), honoured / max(checked, 1))
