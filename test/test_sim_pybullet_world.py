"""The swarm world on the PyBullet backend: the go-to control loop moving real bodies between zones.

Skipped cleanly when pybullet is not installed (`pip install 'altmarl_ros[sim]'`).

The scenario: the default world (5 zones, ring 3.2 m); the leader and 8 robots
start in zone 0, the robots parked on their slots around the leader; the robots
are sent to their slots in zone 1 and the leader to the centre of zone 2, and
the GoToController drives them at the control rate for a fixed time.

Measured when this was written (PyBullet 3.2.7, 240 Hz physics, 10 Hz control,
seeds 0-7; the kinematic backend agrees to within a few hundredths of a second):

* every body was in its destination zone after 7.3-8.6 s of simulated time,
  1.2-1.4x the straight-line time of a robot (3.76 m chord / 0.6 m/s = 6.3 s);
  the leader's own straight line is 6.09 m, 10.1 s at top speed, but it counts
  as in zone 2 once past the midpoint;
* after 5x the robots' straight-line time (31.3 s) every body was within
  0.073 m of its target, and the PyBullet and kinematic bodies within 0.037 m
  of each other;
* the smallest gap between footprint discs (the URDF's wheel-corner radii) was
  +0.021 m: the controller keeps bodies apart, they never even touched;
* the largest roll or pitch of any body was 0.034 rad (a robot rocks onto its
  caster when it accelerates; 0 at rest).

The asserted bounds leave at least 2x margin over these numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")

from altmarl_ros.sim import urdf  # noqa: E402
from altmarl_ros.sim.backend import WorldError  # noqa: E402
from altmarl_ros.sim.config import WorldConfig, zone_centres  # noqa: E402
from altmarl_ros.sim.controller import GoToController  # noqa: E402
from altmarl_ros.sim.world import SwarmWorld  # noqa: E402

ROBOTS = 8
START_ZONE, ROBOT_ZONE, LEADER_ZONE = 0, 1, 2
SEEDS = (0, 1)
TIME_FACTOR = 5.0  # x the straight-line time of a robot; every body arrived by 1.4x (measured)
MAX_TILT = 0.15  # rad of roll or pitch; measured 0.034, a tipped-over body is at ~1.5
MAX_OVERLAP = 0.01  # m of footprint overlap allowed (contact is real); measured: never closer than +0.021 m
TARGET_TOLERANCE = 0.15  # m from the target at the end; measured <= 0.073
BACKEND_AGREEMENT = 0.08  # m between the kinematic and PyBullet final positions; measured <= 0.037


def _bound(config: WorldConfig) -> float:
    """Simulated seconds allowed: TIME_FACTOR x a robot's straight-line time between the zone centres."""
    centres = zone_centres(config)
    return TIME_FACTOR * float(np.linalg.norm(centres[ROBOT_ZONE] - centres[START_ZONE])) / config.max_linear


def _scenario(backend: str, seed: int) -> dict:
    """Drive the leader to zone 2 and the robots from zone 0 to zone 1, the way test_sim_world's _drive does,
    recording the worst footprint gap and (PyBullet) the worst tilt seen at every control step."""
    config = WorldConfig(backend=backend)
    world = SwarmWorld(config, np.full(ROBOTS, START_ZONE), START_ZONE, np.random.default_rng(seed))
    try:
        destination = np.full(ROBOTS, ROBOT_ZONE)
        targets = np.vstack([world.leader_target(LEADER_ZONE), world.park(destination)])
        controller = GoToController(world.radii, config.max_linear, config.max_angular)
        # the true footprints of the URDF bodies in PyBullet; the configured radii in the kinematic world
        radii = world.backend.footprint_radii if backend == "pybullet" else world.radii
        worst_gap, worst_tilt = np.inf, 0.0
        for _ in range(int(round(_bound(config) * config.control_rate))):
            poses = world.poses()
            world.set_cmd_vel(*controller(poses, targets, config.control_dt))
            world.step()
            poses = world.poses()
            centre = np.hypot(*(poses[:, None, :2] - poses[None, :, :2]).transpose(2, 0, 1))
            gap = centre - radii[:, None] - radii[None, :] + np.eye(len(poses)) * 99
            worst_gap = min(worst_gap, float(gap.min()))
            if backend == "pybullet":
                _, rpy = world.backend.base_states()
                worst_tilt = max(worst_tilt, float(np.abs(rpy[:, :2]).max()))
        return {"zones": world.zones(), "poses": world.poses(), "targets": targets, "destination": destination,
                "worst_gap": worst_gap, "worst_tilt": worst_tilt}
    finally:
        world.close()


@pytest.fixture(scope="module")
def pybullet_runs() -> dict[int, dict]:
    return {seed: _scenario("pybullet", seed) for seed in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
def test_robots_and_leader_reach_their_zones_in_pybullet(pybullet_runs, seed):
    run = pybullet_runs[seed]
    assert np.array_equal(run["zones"][1:], run["destination"])
    assert run["zones"][0] == LEADER_ZONE
    assert np.hypot(*(run["poses"][:, :2] - run["targets"]).T).max() < TARGET_TOLERANCE
    assert run["worst_tilt"] < MAX_TILT, f"a body tipped: roll/pitch reached {run['worst_tilt']:.3f} rad"
    assert run["worst_gap"] > -MAX_OVERLAP, f"footprints overlapped by {-run['worst_gap']:.3f} m"


@pytest.mark.parametrize("seed", SEEDS)
def test_kinematic_and_pybullet_end_in_the_same_zones(pybullet_runs, seed):
    kinematic, pybullet = _scenario("kinematic", seed), pybullet_runs[seed]
    assert np.array_equal(kinematic["zones"], pybullet["zones"])
    assert np.array_equal(kinematic["zones"][1:], kinematic["destination"])
    assert np.hypot(*(kinematic["poses"][:, :2] - pybullet["poses"][:, :2]).T).max() < BACKEND_AGREEMENT


@pytest.mark.parametrize("role, attribute", [("robot", "robot_urdf_path"), ("leader", "leader_urdf_path")])
def test_missing_urdf_is_a_world_error(monkeypatch, tmp_path, role, attribute):
    missing = tmp_path / f"no_{role}.urdf"
    monkeypatch.setattr(urdf, attribute, lambda: missing)
    with pytest.raises(WorldError, match=f"{role} URDF") as err:
        SwarmWorld(WorldConfig(backend="pybullet"), np.zeros(3, dtype=int), 0, np.random.default_rng(0))
    message = str(err.value)
    assert str(missing) in message and "not found" in message
