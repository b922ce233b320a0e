"""One robot's logic: its zone from its pose, its local policy, its go-to-zone controller.

The robot node feeds it poses (odometry or motion capture), the coordinator's
broadcasts (each new step once: the host's `topics.SessionFollower` drops
duplicates) and sample requests; it asks the agent for cmd_vel at the control
rate. Nothing here touches rclpy.
"""

from __future__ import annotations

import numpy as np

from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.sim.config import WorldConfig, check_capacity, zone_centres, zone_of
from altmarl_ros.sim.controller import GoToController
from altmarl_ros.sim.episode import check_world_matches
from altmarl_ros.sim.moves import local_actions, robot_destinations


class RobotAgent:
    def __init__(self, robot_id: int, n: int, game: TabularGame, local_policy: np.ndarray, world: WorldConfig,
                 rng: np.random.Generator) -> None:
        check_world_matches(game, world)
        if not 0 <= robot_id < n:
            raise GameValidationError(f"robot id {robot_id} out of range [0, {n})")
        self.robot_id, self.game, self.local_policy, self.world, self.rng = robot_id, game, local_policy, world, rng
        self.slot = check_capacity(world, n)[robot_id]
        self.centres = zone_centres(world)
        self.controller = GoToController(np.array([world.robot_radius]), world.max_linear, world.max_angular)
        self.pose: np.ndarray | None = None
        self.target: np.ndarray | None = None
        self.last_action: int | None = None
        self.destination: int | None = None

    @property
    def zone(self) -> int | None:
        return None if self.pose is None else int(zone_of(self.world, self.pose[None, :2])[0])

    def on_pose(self, x: float, y: float, yaw: float) -> None:
        if not np.all(np.isfinite([x, y, yaw])):
            raise GameValidationError(f"robot {self.robot_id}: pose contains NaN or inf")
        self.pose = np.array([x, y, yaw], dtype=float)

    def on_global(self, step: int, global_state: int) -> int | None:
        """Act with pi_l for this decision step; returns the local action (None before the first pose)."""
        if self.pose is None:
            return None
        if not 0 <= global_state < self.game.num_global_states:
            raise GameValidationError(f"global state {global_state} out of range")
        s = self.zone
        zone = np.array([s])
        action = int(local_actions(self.rng, self.local_policy, zone, global_state)[0])
        destination = int(robot_destinations(self.rng, self.game, self.world.transition_noise, zone, global_state,
                                             np.array([action]))[0])
        self.target = self.centres[destination] + self.slot
        self.destination = destination
        self.last_action = action
        return action

    def sample_reply(self, step: int, requested: np.ndarray) -> tuple[int, int, int] | None:
        """(step, id, zone) if this robot is among those asked, else None."""
        if self.pose is None or self.robot_id not in requested:
            return None
        return step, self.robot_id, self.zone

    def cmd_vel(self, dt: float) -> tuple[float, float]:
        if self.pose is None or self.target is None:
            return 0.0, 0.0
        linear, angular = self.controller(self.pose[None, :], self.target[None, :], dt)
        return float(linear[0]), float(angular[0])
