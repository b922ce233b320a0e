"""Go-to-point controller turning targets into cmd_vel, vectorised over bodies.

A desired planar velocity per body — attraction to its target plus a short-range
repulsion from neighbours with a sideways part (everyone passes on the right),
less any part heading into a close neighbour (so bodies slide along each other)
— is turned into unicycle commands:

* Bounded: |v| <= max_linear, |omega| <= max_angular.
* No spinning in place forever: the yaw rate is proportional to the heading
  error of the desired velocity, which shrinks as the body turns; a body facing
  away from a nearby target backs up instead of turning around.
* Gives way: a parked body near a passing one is repelled off its path and
  returns once it has passed; a body never drives closer than `min_gap` to a
  neighbour (counting what the neighbour's own command closes in the same
  control period) — it stops and waits rather than pushing through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class ControllerGains:
    heading_gain: float = 3.0
    distance_gain: float = 1.2  # 1/s: desired speed per metre to go
    arrive_tolerance: float = 0.03  # m
    reverse_radius: float = 0.3  # m: closer than this, back up rather than turn around
    influence_gap: float = 0.3  # m: neighbours with a smaller gap between footprints repel
    repulsion: float = 1.0  # m/s at contact
    sideways: float = 0.6  # share of the repulsion turned 90 degrees right, to pass on the right
    min_gap: float = 0.01  # m: never drive closer than this to a neighbour


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


class GoToController:
    """Stateless apart from its parameters; one instance per group of bodies.

    `neighbours=False` evaluates every body as if it were alone (no repulsion, sliding or blocking): a
    robot that knows only its own pose, batched."""

    def __init__(self, radii: np.ndarray, max_linear: float, max_angular: float,
                 gains: ControllerGains | None = None, neighbours: bool = True) -> None:
        self.radii = np.asarray(radii, dtype=float)
        self.max_linear, self.max_angular = max_linear, max_angular
        self.gains = gains or ControllerGains()
        self.neighbours = neighbours

    def __call__(self, poses: np.ndarray, targets: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(linear, angular) for each body (x, y, yaw) heading to its target (x, y)."""
        g = self.gains
        to_target = targets - poses[:, :2]
        distance = np.hypot(to_target[:, 0], to_target[:, 1])
        desired = to_target * np.minimum(g.distance_gain, self.max_linear / np.maximum(distance, 1e-9))[:, None]
        desired[distance < g.arrive_tolerance] = 0.0
        if self.neighbours:
            desired += self._repulsion(poses)
            desired = self._slide(poses, desired, dt)
        speed = np.hypot(desired[:, 0], desired[:, 1])
        scale = np.minimum(1.0, self.max_linear / np.maximum(speed, 1e-9))
        desired *= scale[:, None]
        speed *= scale

        error = wrap_angle(np.arctan2(desired[:, 1], desired[:, 0]) - poses[:, 2])
        reverse = (np.abs(error) > np.pi / 2) & (distance < g.reverse_radius)
        steer = np.where(reverse, wrap_angle(error - np.pi), error)
        linear = speed * np.maximum(np.cos(steer), 0.0) * np.where(reverse, -1.0, 1.0)
        angular = np.clip(g.heading_gain * steer, -self.max_angular, self.max_angular)
        idle = speed < 1e-3
        linear[idle], angular[idle] = 0.0, 0.0
        if self.neighbours:
            linear[self._blocked(poses, linear, dt)] = 0.0
        return linear, angular

    def _pairs(self, poses: np.ndarray, reach: float):
        pairs = cKDTree(poses[:, :2]).query_pairs(reach, output_type="ndarray")
        a = np.concatenate([pairs[:, 0], pairs[:, 1]])
        b = np.concatenate([pairs[:, 1], pairs[:, 0]])
        offset = poses[b, :2] - poses[a, :2]
        centre_distance = np.maximum(np.hypot(offset[:, 0], offset[:, 1]), 1e-9)
        gap = centre_distance - self.radii[a] - self.radii[b]
        return a, b, offset / centre_distance[:, None], gap

    def _repulsion(self, poses: np.ndarray) -> np.ndarray:
        """Push away from neighbours within influence_gap, with a part rotated to pass them on the right."""
        g = self.gains
        push = np.zeros((len(poses), 2))
        a, b, unit, gap = self._pairs(poses, 2 * self.radii.max() + g.influence_gap)
        near = gap < g.influence_gap
        if not np.any(near):
            return push
        a, unit, gap = a[near], unit[near], gap[near]
        strength = g.repulsion * (1.0 - np.clip(gap, 0.0, None) / g.influence_gap)
        away = -unit
        right = np.stack([unit[:, 1], -unit[:, 0]], axis=1)  # the neighbour's direction turned 90 deg right
        np.add.at(push, a, strength[:, None] * ((1 - g.sideways) * away + g.sideways * right))
        return push

    def _slide(self, poses: np.ndarray, desired: np.ndarray, dt: float) -> np.ndarray:
        """Drop the part of the desired velocity that heads into a close neighbour: slide along it instead."""
        g = self.gains
        a, b, unit, gap = self._pairs(poses, 2 * self.radii.max() + g.min_gap + 2 * self.max_linear * dt)
        if len(a) == 0:
            return desired
        close = gap < g.min_gap + 2 * self.max_linear * dt
        a, unit = a[close], unit[close]
        towards = np.maximum((desired[a] * unit).sum(axis=1), 0.0)
        correction = np.zeros_like(desired)
        np.add.at(correction, a, towards[:, None] * unit)
        return desired - correction

    def _blocked(self, poses: np.ndarray, linear: np.ndarray, dt: float) -> np.ndarray:
        """Moving bodies whose next period of motion would bring them within min_gap of a neighbour,
        counting what the neighbour's own command closes in the same period."""
        g = self.gains
        blocked = np.zeros(len(poses), dtype=bool)
        a, b, unit, gap = self._pairs(poses, 2 * self.radii.max() + g.min_gap + 2 * self.max_linear * dt)
        if len(a) == 0:
            return blocked
        heading = np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=1)
        own = linear[a] * dt * (heading[a] * unit).sum(axis=1)  # a's approach towards b
        other = linear[b] * dt * -(heading[b] * unit).sum(axis=1)  # b's approach towards a
        hit = (own > 0) & (gap - own - np.maximum(other, 0.0) < g.min_gap)
        blocked[a[hit]] = True
        return blocked


class ControlGate:
    """Once per control period on the clock of the poses: a process that takes a pose late still commands
    once per period, and a clock that goes back (a restarted sim) starts the gate afresh.

    The 0.999 lets a pose stamped a hair under one period after the last command through.
    """

    def __init__(self, period: float) -> None:
        self.period = float(period)
        self.last: float | None = None

    def due(self, now: float) -> bool:
        """True (and the period restarts at `now`) if a command is due at `now`."""
        if self.last is None or now < self.last or now - self.last >= 0.999 * self.period:
            self.last = now
            return True
        return False
