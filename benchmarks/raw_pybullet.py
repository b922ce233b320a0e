"""Raw PyBullet reference: how fast bare `stepSimulation()` runs with the swarm's bodies loaded.

The same URDF bodies as `PyBulletBackend` (the leader and n robots from
`urdf/`, loaded with the same flags on a ground plane, gravity on, time step
1/physics_rate) in a bare DIRECT client, at rest on a grid; then only
`p.stepSimulation()` is timed: no motor commands, no pose reads. This is the
ceiling that the backend (and anything built on it) is compared against.

    python3 benchmarks/raw_pybullet.py                  # n = 10 100 1000
    python3 benchmarks/raw_pybullet.py --n 50 --rate 120 --seconds 1

Wall-clock timings (`time.perf_counter`); they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from altmarl_ros.sim.pybullet_backend import (  # noqa: E402
    configure_solver,
    import_pybullet,
    quiet_urdf_loading,
    urdf_flags,
)
from altmarl_ros.sim.urdf import leader_urdf_path, robot_urdf_path  # noqa: E402

GRID_SPACING = 0.45  # m between body centres: the world config's parking spacing


def grid_poses(bodies: int, spacing: float = GRID_SPACING) -> np.ndarray:
    """(bodies, 3) poses on a square grid centred on the origin, yaw 0."""
    side = math.ceil(math.sqrt(bodies))
    i = np.arange(bodies)
    xy = np.stack([i % side, i // side], axis=1) * spacing
    xy = xy - xy.mean(axis=0)
    return np.column_stack([xy, np.zeros(bodies)])


def _load(n: int, physics_rate: float) -> tuple[object, int, float]:
    p = import_pybullet()
    cid = p.connect(p.DIRECT)
    p.setGravity(0.0, 0.0, -9.81, physicsClientId=cid)
    p.setTimeStep(1.0 / physics_rate, physicsClientId=cid)
    configure_solver(p, cid)
    p.createMultiBody(0.0, p.createCollisionShape(p.GEOM_PLANE, physicsClientId=cid), physicsClientId=cid)
    flags = urdf_flags(p)
    leader, robot = str(leader_urdf_path()), str(robot_urdf_path())
    start = time.perf_counter()
    with quiet_urdf_loading():
        for i, (x, y, _) in enumerate(grid_poses(n + 1)):
            p.loadURDF(leader if i == 0 else robot, basePosition=[x, y, 0.0], useFixedBase=False, flags=flags,
                       physicsClientId=cid)
    return p, cid, time.perf_counter() - start


def raw_step_rate(n: int, physics_rate: float, seconds: float) -> float:
    """Physics steps per wall-clock second of bare stepSimulation() with the leader and n robots loaded.

    Runs round(seconds * physics_rate) steps (at least one), i.e. `seconds` of simulated time.
    """
    return raw_measure(n, physics_rate, seconds)["steps_per_s"]


def raw_measure(n: int, physics_rate: float, seconds: float) -> dict:
    """raw_step_rate's measurement with its details: load time, steps, wall time, real-time factor."""
    if n < 0 or physics_rate <= 0 or seconds <= 0:
        raise ValueError(f"need n >= 0, physics_rate > 0, seconds > 0; got {n}, {physics_rate}, {seconds}")
    p, cid, load_s = _load(n, physics_rate)
    try:
        steps = max(1, int(round(seconds * physics_rate)))
        start = time.perf_counter()
        for _ in range(steps):
            p.stepSimulation(physicsClientId=cid)
        wall = time.perf_counter() - start
    finally:
        p.disconnect(physicsClientId=cid)
    rate = steps / wall
    return {"n": n, "physics_rate": physics_rate, "steps": steps, "load_s": load_s, "step_wall_s": wall,
            "steps_per_s": rate, "real_time_factor": rate / physics_rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000], help="robots (plus one leader)")
    parser.add_argument("--rate", type=float, default=240.0, help="physics rate, Hz")
    parser.add_argument("--seconds", type=float, default=None,
                        help="simulated seconds to time (default: 2 for n <= 100, else 0.25)")
    args = parser.parse_args(argv)
    print(f"{'n':>6} {'load s':>8} {'steps':>6} {'steps/s':>9} {'x real time':>11}")
    for n in args.n:
        seconds = args.seconds if args.seconds is not None else (2.0 if n <= 100 else 0.25)
        r = raw_measure(n, args.rate, seconds)
        print(f"{n:>6} {r['load_s']:>8.2f} {r['steps']:>6} {r['steps_per_s']:>9.1f} {r['real_time_factor']:>11.3f}")


if __name__ == "__main__":
    main()
