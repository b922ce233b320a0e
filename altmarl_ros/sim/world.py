"""The swarm world: a leader (body 0) and n robots (bodies 1..n) on a ring of zones.

The crazyswarm2-style surface is `set_cmd_vel`, `step`, `poses`, `twists`,
`zones` and `close`, over either backend. Placement follows the task's initial
distribution: zones drawn by the caller, each robot parked on its own slot.
"""

from __future__ import annotations

import numpy as np

from altmarl_ros.marl.game import TabularGame
from altmarl_ros.marl.population import sample_initial_states
from altmarl_ros.sim.backend import Backend, KinematicBackend, WorldError
from altmarl_ros.sim.config import WorldConfig, check_capacity, parking_slots, zone_centres, zone_of


def initial_zones(game: TabularGame, rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """Where the ROS graph's sim starts: the leader's zone and every robot's zone, one draw of the task's
    initial distribution (a count vector of game.n robots, shuffled over the robot ids)."""
    leader_zone, counts = sample_initial_states(game, rng, 1)
    zones = rng.permutation(np.repeat(np.arange(game.num_local_states), counts[0]))
    return int(leader_zone[0]), zones


def make_backend(config: WorldConfig, initial_poses: np.ndarray) -> Backend:
    if config.backend == "kinematic":
        return KinematicBackend(initial_poses, config.physics_rate)
    from altmarl_ros.sim.pybullet_backend import PyBulletBackend
    from altmarl_ros.sim.urdf import leader_urdf_path, robot_urdf_path

    return PyBulletBackend(initial_poses, config.physics_rate, robot_urdf_path(), leader_urdf_path(),
                           gui=config.gui, arena_half_size=config.arena_half_size)


class SwarmWorld:
    """Bodies on the zone ring, stepped one control period at a time."""

    def __init__(self, config: WorldConfig, robot_zones: np.ndarray, leader_zone: int,
                 rng: np.random.Generator) -> None:
        robot_zones = np.asarray(robot_zones, dtype=np.int64)
        if robot_zones.ndim != 1:
            raise WorldError(f"robot_zones must be a 1-D array of zone indices, got shape {robot_zones.shape}")
        if np.any((robot_zones < 0) | (robot_zones >= config.zones)) or not 0 <= leader_zone < config.zones:
            raise WorldError(f"zones must lie in [0, {config.zones})")
        self.config = config
        self.n = len(robot_zones)
        check_capacity(config, self.n)
        self.slots = parking_slots(config)
        self.centres = zone_centres(config)
        self.radii = np.concatenate([[config.leader_radius], np.full(self.n, config.robot_radius)])
        self.time = 0.0
        poses = np.zeros((self.n + 1, 3))
        poses[0, :2] = self.centres[leader_zone]
        poses[0, 2] = rng.uniform(-np.pi, np.pi)
        poses[1:, :2] = self.park(robot_zones)
        poses[1:, 2] = rng.uniform(-np.pi, np.pi, self.n)
        self.backend = make_backend(config, poses)

    # --- the backend API -------------------------------------------------------------------
    def set_cmd_vel(self, linear: np.ndarray, angular: np.ndarray) -> None:
        """Command every body (index 0 = leader); speeds are clipped to the configured limits."""
        linear = np.clip(np.asarray(linear, dtype=float), -self.config.max_linear, self.config.max_linear)
        angular = np.clip(np.asarray(angular, dtype=float), -self.config.max_angular, self.config.max_angular)
        if linear.shape != (self.n + 1,) or angular.shape != (self.n + 1,):
            raise WorldError(f"cmd_vel arrays must have shape ({self.n + 1},) (leader + n robots)")
        if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))):
            raise WorldError("cmd_vel contains NaN or inf")
        self.backend.set_cmd_vel(linear, angular)

    def step(self, dt: float | None = None) -> None:
        """Advance by dt (default one control period)."""
        dt = self.config.control_dt if dt is None else dt
        if not dt > 0:
            raise WorldError(f"step dt must be > 0, got {dt}")
        self.backend.step(dt)
        self.time += dt

    def poses(self) -> np.ndarray:
        return self.backend.poses()

    def twists(self) -> np.ndarray:
        return self.backend.twists()

    def zones(self) -> np.ndarray:
        """Zone of every body (index 0 = leader): the nearest zone centre."""
        return zone_of(self.config, self.poses()[:, :2])

    def close(self) -> None:
        self.backend.close()

    # --- targets -----------------------------------------------------------------------------
    def park(self, target_zones: np.ndarray) -> np.ndarray:
        """Parking point of each robot in its target zone: its own slot, the same offset in every zone.

        A group moving between zones then translates rigidly and never crosses
        itself; only parked robots can be in the way, and they make way.
        """
        target_zones = np.asarray(target_zones)
        return self.centres[target_zones] + self.slots[: len(target_zones)]

    def leader_target(self, zone: int) -> np.ndarray:
        return self.centres[zone]
