"""The robots of one fleet process as arrays: what the batched simulation link evaluates.

Each robot is still its own `RobotAgent` (its own seeded draws, zone, slot and
target), so a policy acts the same on either link; only the pose input and the
go-to controller are batched: one pose array in, one (v, omega) array out, the
controller evaluated for every robot at once with no neighbour terms, as each
robot's own controller runs on the per-robot link. Nothing here touches rclpy.
"""

from __future__ import annotations

import numpy as np

from altmarl_ros.agents.robot_agent import RobotAgent
from altmarl_ros.marl.errors import GameValidationError
from altmarl_ros.marl.game import TabularGame
from altmarl_ros.sim.config import WorldConfig
from altmarl_ros.sim.controller import GoToController


class RobotBatch:
    """Robots [first, last) of n; robot i draws from `default_rng([seed, i])`, as a robot node does."""

    def __init__(self, first: int, last: int, n: int, game: TabularGame, local_policy: np.ndarray,
                 world: WorldConfig, seed: int) -> None:
        if not 0 <= first < last <= n:
            raise GameValidationError(f"robot range [{first}, {last}) must be non-empty and lie in [0, {n})")
        self.first, self.last = first, last
        self.ids = np.arange(first, last)
        self.agents = [RobotAgent(int(i), n, game, local_policy, world, np.random.default_rng([seed, int(i)]))
                       for i in self.ids]
        self.poses = np.zeros((len(self.ids), 3))
        self.has_pose = False
        self.targets = np.zeros((len(self.ids), 2))
        self.has_target = np.zeros(len(self.ids), dtype=bool)
        self.controller = GoToController(np.full(len(self.ids), world.robot_radius), world.max_linear,
                                         world.max_angular, neighbours=False)

    def __len__(self) -> int:
        return len(self.ids)

    def on_poses(self, poses: np.ndarray) -> None:
        """Every robot's (x, y, yaw) at once, in id order."""
        poses = np.asarray(poses, dtype=float)
        if poses.shape != self.poses.shape:
            raise GameValidationError(f"expected poses of shape {self.poses.shape} (robots {self.first}.."
                                      f"{self.last - 1}), got {poses.shape}")
        if not np.all(np.isfinite(poses)):
            raise GameValidationError("poses contain NaN or inf")
        self.poses[:] = poses
        if not self.has_pose:  # the agents read their rows of the array from now on
            for agent, row in zip(self.agents, self.poses, strict=True):
                agent.pose = row
            self.has_pose = True

    def on_global(self, step: int, global_state: int) -> list[tuple[int, int, int, int]]:
        """Each robot acts with pi_l; (id, zone, local action, destination) per robot (none before a pose)."""
        if not self.has_pose:
            return []
        decisions = []
        for index, agent in enumerate(self.agents):
            action = agent.on_global(step, global_state)
            self.targets[index] = agent.target
            decisions.append((agent.robot_id, int(agent.zone), action, int(agent.destination)))
        self.has_target[:] = True
        return decisions

    def sample_replies(self, step: int, requested: np.ndarray) -> list[tuple[int, int, int, float, float]]:
        """(step, id, zone, x, y) of each robot here among those asked, each once, in the order asked."""
        if not self.has_pose:
            return []
        replies = []
        for robot_id in dict.fromkeys(int(i) for i in requested):
            if self.first <= robot_id < self.last:
                agent = self.agents[robot_id - self.first]
                step_, _, zone = agent.sample_reply(step, requested)
                replies.append((step_, robot_id, zone, float(agent.pose[0]), float(agent.pose[1])))
        return replies

    def cmd_vel(self, dt: float) -> np.ndarray:
        """(robots, 2): (v, omega) to each robot's target; zero without a pose or a target."""
        command = np.zeros((len(self.ids), 2))
        moving = np.flatnonzero(self.has_target) if self.has_pose else np.zeros(0, dtype=np.int64)
        if len(moving):
            linear, angular = self.controller(self.poses[moving], self.targets[moving], dt)
            command[moving, 0], command[moving, 1] = linear, angular
        return command
