"""The backend interface shared by the PyBullet and kinematic worlds: set_cmd_vel, step, poses, twists, close.

A backend moves bodies: body 0 is the leader, bodies 1..n the robots. Poses are
(x, y, yaw) in metres and radians in the arena frame; twists are (v, omega) in
the body frame. `set_cmd_vel` holds until the next call, as a ROS `cmd_vel`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from altmarl_ros.marl.errors import AltmarlError

BACKENDS = ("pybullet", "kinematic")


class WorldError(AltmarlError, ValueError):
    """The world's configuration or assets are invalid."""


class Backend(Protocol):
    num_bodies: int

    def set_cmd_vel(self, linear: np.ndarray, angular: np.ndarray) -> None:
        """Command every body: forward speed (m/s) and yaw rate (rad/s), arrays of num_bodies."""

    def step(self, dt: float) -> None:
        """Advance physics by `dt` seconds (an integer number of internal physics steps)."""

    def poses(self) -> np.ndarray:
        """(num_bodies, 3) array of x, y, yaw."""

    def twists(self) -> np.ndarray:
        """(num_bodies, 2) array of forward speed and yaw rate, as measured."""

    def close(self) -> None:
        """Release resources (PyBullet connection)."""


class KinematicBackend:
    """Unicycle integration, no contact: thousands of robots at numpy speed.

    A command is held over each `step(dt)`, so the exact arc of the unicycle is
    integrated in one go; `physics_rate` only bounds how long one arc may be.
    """

    def __init__(self, initial_poses: np.ndarray, physics_rate: float) -> None:
        self._poses = np.array(initial_poses, dtype=np.float64)
        if self._poses.ndim != 2 or self._poses.shape[1] != 3:
            raise WorldError(f"initial poses must have shape (bodies, 3), got {self._poses.shape}")
        self.num_bodies = len(self._poses)
        self.physics_rate = physics_rate
        self._cmd = np.zeros((self.num_bodies, 2))

    def set_cmd_vel(self, linear: np.ndarray, angular: np.ndarray) -> None:
        self._cmd[:, 0] = linear
        self._cmd[:, 1] = angular

    def step(self, dt: float) -> None:
        v, w = self._cmd[:, 0], self._cmd[:, 1]
        yaw = self._poses[:, 2]
        turn = w * dt
        straight = np.abs(turn) < 1e-9
        safe_w = np.where(straight, 1.0, w)
        self._poses[:, 0] += np.where(straight, v * dt * np.cos(yaw), v / safe_w * (np.sin(yaw + turn) - np.sin(yaw)))
        self._poses[:, 1] += np.where(straight, v * dt * np.sin(yaw), -v / safe_w * (np.cos(yaw + turn) - np.cos(yaw)))
        self._poses[:, 2] = (yaw + turn + np.pi) % (2 * np.pi) - np.pi

    def poses(self) -> np.ndarray:
        return self._poses.copy()

    def twists(self) -> np.ndarray:
        return self._cmd.copy()

    def close(self) -> None:
        pass
