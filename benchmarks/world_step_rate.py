"""Benchmark: how fast the swarm world's real control loop runs, per backend, as n grows.

For each n and backend, one fresh process builds a `WorldConfig` that fits n
robots, places them as the task does, sends about 15 % of them to a
neighbouring zone (so bodies really move, pass each other and make way), and
runs the control loop for a fixed simulated time::

    poses = world.poses()                                    # pose reads
    linear, angular = controller(poses, targets, dt)          # GoToController
    world.set_cmd_vel(linear, angular)                        # cmd_vel
    world.step()                                              # one control period of physics

at 10 Hz control and 240 Hz physics (24 physics steps per control step).

Geometry: robot spacing 0.45 m (the default); zone_radius is the default
1.85 m, raised in 0.05 m steps until one zone holds all n robots
(``len(parking_slots(config)) >= n``, since every robot may end in one zone);
``ring_radius = zone_radius / sin(pi / zones) * 1.05`` and
``arena_half_size = ring_radius + zone_radius + 0.5``.

Placement: leader zone uniform, robot zones drawn from a Dirichlet(0.3)
profile as the zones task draws them, ``default_rng(seed)``; 15 % of the
robots (drawn with the same rng) get a destination one zone up or down, the
rest and the leader hold their places.

Reported: control steps, physics steps and robot-steps (physics steps x n) per
wall second, the real-time factor, and the loop time split into controller,
backend step (with set_cmd_vel) and pose reads. For PyBullet, the raw rate of
bare ``stepSimulation()`` with the same bodies at the same physics rate
(`raw_pybullet.raw_step_rate`, in its own fresh process) and raw / world, the
world's overhead over bare PyBullet (target <= 2x).

The kinematic backend integrates each body's exact arc once per control period,
so its "physics steps" are nominal: control steps x 24, the work PyBullet does
for the same simulated time.

Run:  python3 benchmarks/world_step_rate.py [--n 10 100 1000] [--backend kinematic pybullet]
                                            [--seconds S] [--json out.json]

Wall-clock timings (`time.perf_counter`); they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    emit_result,
    format_table,
    machine_info,
    package_versions,
    peak_rss_mib,
    run_case,
    use_repo_package,
    write_json,
)

SCRIPT = str(Path(__file__).resolve())
ZONES = 5
DEFAULT_ZONE_RADIUS = 1.85  # m, WorldConfig's default
ZONE_RADIUS_STEP = 0.05  # m
RING_MARGIN = 1.05
ARENA_MARGIN = 0.5  # m
MOVING_SHARE = 0.15
PROFILE_CONCENTRATION = 0.3  # the zones task's Dirichlet concentration
TARGET_OVERHEAD = 2.0  # raw / world physics step rate


def default_seconds(backend: str, n: int) -> float:
    """Simulated seconds per case: PyBullet 5 s up to n = 100 and 1 s beyond; kinematic 60 s."""
    if backend == "kinematic":
        return 60.0
    return 5.0 if n <= 100 else 1.0


def fit_geometry(n: int, spacing: float, zones: int = ZONES) -> dict[str, float]:
    """Zone radius, ring radius and arena half size of a world in which one zone holds n robots."""
    from altmarl_ros.sim.config import WorldConfig, parking_slots

    zone_radius = DEFAULT_ZONE_RADIUS
    while True:
        ring_radius = zone_radius / math.sin(math.pi / zones) * RING_MARGIN
        geometry = {"zones": zones, "robot_spacing": spacing, "zone_radius": zone_radius,
                    "ring_radius": ring_radius, "arena_half_size": ring_radius + zone_radius + ARENA_MARGIN}
        capacity = len(parking_slots(WorldConfig(**geometry)))
        if capacity >= n:
            return {**geometry, "zone_capacity": capacity}
        zone_radius = round(zone_radius + ZONE_RADIUS_STEP, 6)


def measure_world(case: dict[str, Any]) -> dict[str, Any]:
    """Child: build the world and time the control loop."""
    import numpy as np

    from altmarl_ros.marl.population import inverse_cdf_draw
    from altmarl_ros.sim.config import WorldConfig, zone_centres
    from altmarl_ros.sim.controller import GoToController
    from altmarl_ros.sim.world import SwarmWorld

    n, seconds = case["n"], case["seconds"]
    geometry = fit_geometry(n, case["spacing"])
    config = WorldConfig(**{k: v for k, v in geometry.items() if k != "zone_capacity"}, backend=case["backend"])
    rng = np.random.default_rng(case["seed"])
    leader_zone = int(rng.integers(config.zones))
    profile = rng.dirichlet(np.full(config.zones, PROFILE_CONCENTRATION))
    robot_zones = inverse_cdf_draw(rng, profile, size=n)
    start = time.perf_counter()
    world = SwarmWorld(config, robot_zones, leader_zone, rng)
    build_s = time.perf_counter() - start

    movers = rng.choice(n, size=max(1, int(round(MOVING_SHARE * n))), replace=False)
    destination = robot_zones.copy()
    destination[movers] = (destination[movers] + rng.choice([-1, 1], size=len(movers))) % config.zones
    targets = np.vstack([world.leader_target(leader_zone), world.park(destination)])
    controller = GoToController(world.radii, config.max_linear, config.max_angular)
    dt = config.control_dt
    control_steps = max(1, int(round(seconds * config.control_rate)))
    physics_per_control = max(1, int(round(dt * config.physics_rate)))
    start_xy = world.poses()[1:, :2]

    t_pose = t_ctrl = t_cmd = t_step = 0.0
    clock = time.perf_counter
    loop_start = clock()
    for _ in range(control_steps):
        t0 = clock()
        poses = world.poses()
        t1 = clock()
        linear, angular = controller(poses, targets, dt)
        t2 = clock()
        world.set_cmd_vel(linear, angular)
        t3 = clock()
        world.step()
        t4 = clock()
        t_pose += t1 - t0
        t_ctrl += t2 - t1
        t_cmd += t3 - t2
        t_step += t4 - t3
    loop_s = clock() - loop_start

    final = world.poses()
    travelled = np.hypot(*(final[1:, :2] - start_xy).T)
    arrived = int(np.sum(world.zones()[1:][movers] == destination[movers]))
    world.close()
    physics_steps = control_steps * physics_per_control
    chord = float(np.linalg.norm(zone_centres(config)[1] - zone_centres(config)[0]))
    return {
        **geometry,
        "physics_rate": config.physics_rate,
        "control_rate": config.control_rate,
        "build_s": build_s,
        "control_steps": control_steps,
        "physics_steps": physics_steps,
        "sim_seconds": control_steps * dt,
        "loop_s": loop_s,
        "pose_s": t_pose,
        "controller_s": t_ctrl,
        "cmd_vel_s": t_cmd,
        "step_s": t_step,
        "control_steps_per_s": control_steps / loop_s,
        "physics_steps_per_s": physics_steps / loop_s,
        "robot_steps_per_s": physics_steps * n / loop_s,
        "real_time_factor": control_steps * dt / loop_s,
        "movers": len(movers),
        "movers_arrived": arrived,
        "mover_mean_travel_m": float(travelled[movers].mean()),
        "zone_chord_m": chord,
        "peak_rss_mib": peak_rss_mib(),
        **package_versions(),
    }


def measure_raw(case: dict[str, Any]) -> dict[str, Any]:
    """Child: bare PyBullet stepSimulation() with the same bodies (raw_pybullet)."""
    sys.path.insert(0, str(Path(SCRIPT).parent))
    from raw_pybullet import raw_measure

    result = raw_measure(case["n"], case["physics_rate"], case["seconds"])
    return {**result, "peak_rss_mib": peak_rss_mib()}


def run_child(case_json: str) -> None:
    """Entry point of the hidden ``--one`` mode."""
    use_repo_package()
    case = json.loads(case_json)
    emit_result({"world": measure_world, "raw": measure_raw}[case["kind"]](case))


def measure_case(n: int, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Parent: the world loop (and, for PyBullet, the raw reference), each in a fresh process."""
    seconds = args.seconds if args.seconds is not None else default_seconds(backend, n)
    row = {"n": n, "backend": backend, "seconds_requested": seconds,
           **run_case(SCRIPT, {"kind": "world", "n": n, "backend": backend, "seconds": seconds,
                               "spacing": args.spacing, "seed": args.seed})}
    if backend == "pybullet" and not args.skip_raw:
        raw = run_case(SCRIPT, {"kind": "raw", "n": n, "physics_rate": row["physics_rate"], "seconds": seconds})
        row.update(raw_steps_per_s=raw["steps_per_s"], raw_steps=raw["steps"], raw_load_s=raw["load_s"],
                   overhead=raw["steps_per_s"] / row["physics_steps_per_s"],
                   step_only_overhead=raw["steps_per_s"] / (row["physics_steps"] / row["step_s"]))
    return row


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def print_tables(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nSwarm world control loop: 10 Hz control, 240 Hz physics, spacing {args.spacing} m, seed {args.seed}, "
          f"~{100 * MOVING_SHARE:.0f}% of robots sent to a neighbouring zone; one fresh process per measurement\n")
    print("Geometry (zone radius raised until one zone holds all n robots)")
    seen = {}
    for r in rows:
        seen.setdefault(r["n"], r)
    print(format_table(
        ["n", "zone radius m", "ring radius m", "arena half m", "zone capacity", "zone chord m"],
        [[str(n), f"{r['zone_radius']:.2f}", f"{r['ring_radius']:.3f}", f"{r['arena_half_size']:.3f}",
          str(r["zone_capacity"]), f"{r['zone_chord_m']:.2f}"] for n, r in seen.items()],
    ))
    print("\nRates (physics steps of the kinematic backend are nominal: control steps x 24; "
          "raw = bare stepSimulation, same bodies and rate;\n"
          "raw / world = the whole loop's overhead; raw / step only = world.step() alone against bare stepSimulation)")
    print(format_table(
        ["n", "backend", "sim s", "wall s", "ctrl steps/s", "phys steps/s", "robot-steps/s", "x real time",
         "raw phys steps/s", "raw / world", "raw / step only"],
        [[str(r["n"]), r["backend"], f"{r['sim_seconds']:g}", f"{r['loop_s']:.3f}",
          _rate(r["control_steps_per_s"]), _rate(r["physics_steps_per_s"]), f"{r['robot_steps_per_s']:,.0f}",
          f"{r['real_time_factor']:.3f}" if r["real_time_factor"] < 10 else f"{r['real_time_factor']:.1f}",
          _rate(r["raw_steps_per_s"]) if "raw_steps_per_s" in r else "-",
          f"{r['overhead']:.2f}x" if "overhead" in r else "-",
          f"{r['step_only_overhead']:.2f}x" if "overhead" in r else "-"] for r in rows],
    ))
    print("\nWhere the loop time goes (% of wall s; step = world.step(), cmd_vel = world.set_cmd_vel())")
    print(format_table(
        ["n", "backend", "wall s", "controller %", "step %", "cmd_vel %", "pose reads %", "ms / ctrl step",
         "build s", "movers", "arrived", "mean travel m"],
        [[str(r["n"]), r["backend"], f"{r['loop_s']:.3f}", f"{100 * r['controller_s'] / r['loop_s']:.1f}",
          f"{100 * r['step_s'] / r['loop_s']:.1f}", f"{100 * r['cmd_vel_s'] / r['loop_s']:.1f}",
          f"{100 * r['pose_s'] / r['loop_s']:.1f}", f"{1000 * r['loop_s'] / r['control_steps']:.2f}",
          f"{r['build_s']:.2f}", str(r["movers"]), str(r["movers_arrived"]), f"{r['mover_mean_travel_m']:.2f}"]
         for r in rows],
    ))
    over = [r for r in rows if "overhead" in r]
    if over:
        verdict = ", ".join(f"n={r['n']}: {r['overhead']:.2f}x ({'ok' if r['overhead'] <= TARGET_OVERHEAD else 'over'})"
                            for r in over)
        print(f"\nPyBullet overhead vs target <= {TARGET_OVERHEAD:g}x: {verdict}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000], help="robots (plus one leader)")
    parser.add_argument("--backend", nargs="+", choices=["kinematic", "pybullet"], default=["kinematic", "pybullet"],
                        help="backends to time")
    parser.add_argument("--seconds", type=float, default=None,
                        help="simulated seconds per case (default: kinematic 60; pybullet 5 for n <= 100, else 1)")
    parser.add_argument("--spacing", type=float, default=0.45, help="robot spacing between parking slots, m")
    parser.add_argument("--seed", type=int, default=0, help="seed of the placement rng")
    parser.add_argument("--skip-raw", action="store_true", help="do not time the raw PyBullet reference")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        parser.error("--seconds must be > 0")
    if any(n < 1 for n in args.n):
        parser.error("--n values must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        run_child(args.one)
        return
    rows = []
    for n in args.n:
        for backend in args.backend:
            print(f"n={n} backend={backend} ...", file=sys.stderr, flush=True)
            rows.append(measure_case(n, backend, args))
    print_tables(rows, args)
    if args.json:
        write_json(args.json, {
            "benchmark": "world_step_rate",
            "command": [sys.executable, *sys.argv],
            "settings": {"control_rate": 10.0, "physics_rate": 240.0, "spacing": args.spacing, "seed": args.seed,
                         "moving_share": MOVING_SHARE, "profile_concentration": PROFILE_CONCENTRATION,
                         "seconds": args.seconds},
            "target": {"max_overhead": TARGET_OVERHEAD},
            "machine": machine_info(),
            "results": rows,
        })
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
