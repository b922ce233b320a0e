"""World parameters: geometry of the arena and zones, rates, speeds, backend.

Physics rate, control rate and decision period are separate: physics steps run
inside one control period, controllers run once per control period, and the
policies decide once per decision period.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from altmarl_ros.sim.backend import BACKENDS, WorldError
from altmarl_ros.sim.urdf import leader_urdf_path, parse_drive, robot_urdf_path

TRANSITION_NOISE = ("model", "none")


@dataclass(frozen=True)
class WorldConfig:
    zones: int = 5
    ring_radius: float = 3.2  # m, zone centres on this circle
    zone_radius: float = 1.85  # m, robots are placed and parked inside this disc
    arena_half_size: float = 5.5  # m, square arena with walls
    # m between parking slots: a parked robot has room to step aside for a robot passing through
    robot_spacing: float = 0.45
    physics_rate: float = 240.0  # Hz
    control_rate: float = 10.0  # Hz
    decision_period: float = 14.0  # long enough to cross two zones  # s of simulated time between decisions
    max_linear: float = 0.6  # m/s
    max_angular: float = 2.5  # rad/s
    backend: str = "kinematic"
    gui: bool = False
    # "model": a robot's destination zone is drawn from the tabular P_l (the leader's from P_g),
    # so physics executes the task's stochastic model; "none": destination = the commanded zone.
    transition_noise: str = "model"

    # the bodies' sizes are the URDFs' (one source for physics, controllers, spacing and RViz)
    DERIVED_KEYS: ClassVar[dict[str, str]] = {
        "robot_radius": "the footprint of urdf/swarm_robot.urdf", "leader_radius": "the footprint of urdf/leader.urdf"}

    @property
    def robot_radius(self) -> float:
        """m: the swarm robot's footprint (urdf/swarm_robot.urdf), for spacing checks and yielding."""
        return urdf_footprints()[0]

    @property
    def leader_radius(self) -> float:
        """m: the leader's footprint (urdf/leader.urdf)."""
        return urdf_footprints()[1]

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise WorldError(f"unknown backend {self.backend!r}; valid backends: {list(BACKENDS)}")
        if self.transition_noise not in TRANSITION_NOISE:
            raise WorldError(
                f"transition_noise must be one of {list(TRANSITION_NOISE)}, got {self.transition_noise!r}")
        if self.zones < 2:
            raise WorldError(f"zones must be >= 2, got {self.zones}")
        for name in ("physics_rate", "control_rate", "decision_period", "max_linear", "max_angular",
                     "ring_radius", "zone_radius", "arena_half_size", "robot_spacing"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise WorldError(f"{name} must be a positive number, got {value!r}")
        if self.control_rate > self.physics_rate:
            raise WorldError(
                f"control_rate ({self.control_rate} Hz) cannot exceed physics_rate ({self.physics_rate} Hz)")
        if self.decision_period < 1.0 / self.control_rate:
            raise WorldError(f"decision_period ({self.decision_period} s) must span at least one control period "
                             f"(1/control_rate = {1.0 / self.control_rate} s)")
        half_gap = self.ring_radius * np.sin(np.pi / self.zones)
        if self.zone_radius > half_gap:
            raise WorldError(f"zone_radius {self.zone_radius} m makes neighbouring zones overlap: with {self.zones} "
                             f"zones on a ring of radius {self.ring_radius} m it must be <= {half_gap:.3f} m")
        if self.ring_radius + self.zone_radius + self.leader_radius > self.arena_half_size:
            raise WorldError(f"the zones (ring {self.ring_radius} m + zone {self.zone_radius} m) do not fit in an "
                             f"arena of half size {self.arena_half_size} m")

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control_rate

    @property
    def control_steps_per_decision(self) -> int:
        return max(1, int(round(self.decision_period * self.control_rate)))


@lru_cache(maxsize=1)
def urdf_footprints() -> tuple[float, float]:
    """(robot, leader) footprint radii in m: the smallest base-centred discs holding each URDF's shapes."""
    return parse_drive(robot_urdf_path()).footprint_radius, parse_drive(leader_urdf_path()).footprint_radius


def zone_centres(config: WorldConfig) -> np.ndarray:
    """(Z, 2) centres on the ring, zone 0 on the +x axis, counter-clockwise ('up' = +1 zone)."""
    angles = 2.0 * np.pi * np.arange(config.zones) / config.zones
    return config.ring_radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def zone_of(config: WorldConfig, xy: np.ndarray) -> np.ndarray:
    """Zone of each point: the nearest zone centre."""
    xy = np.asarray(xy, dtype=float)
    d2 = ((xy[..., None, :] - zone_centres(config)) ** 2).sum(axis=-1)
    return np.argmin(d2, axis=-1)


def parking_slots(config: WorldConfig) -> np.ndarray:
    """Offsets from a zone centre of a hexagonal lattice of slots inside the zone disc, nearest first."""
    s = config.robot_spacing
    reach = config.zone_radius - config.robot_radius
    span = int(np.ceil(reach / s)) + 1
    i, j = np.meshgrid(np.arange(-span, span + 1), np.arange(-span, span + 1), indexing="ij")
    x = s * (i + 0.5 * (j % 2))
    y = s * (np.sqrt(3) / 2) * j
    slots = np.stack([x.ravel(), y.ravel()], axis=1)
    # keep clear of the leader parked at the centre
    keep = (np.hypot(slots[:, 0], slots[:, 1]) <= reach) & (
        np.hypot(slots[:, 0], slots[:, 1]) >= config.leader_radius + config.robot_radius + 0.02)
    slots = slots[keep]
    return slots[np.argsort(np.hypot(slots[:, 0], slots[:, 1]), kind="stable")]


def check_capacity(config: WorldConfig, n: int) -> np.ndarray:
    """Slots for n robots; every robot may end in one zone, so one zone must hold all n."""
    if n < 1:
        raise WorldError(f"n (number of robots) must be >= 1, got {n}")
    slots = parking_slots(config)
    if n > len(slots):
        raise WorldError(
            f"n={n} robots do not fit: a zone of radius {config.zone_radius} m holds {len(slots)} robots at "
            f"spacing {config.robot_spacing} m (all robots may gather in one zone); lower n, or raise zone_radius "
            f"(with ring_radius) or lower robot_spacing")
    return slots[:n]
