"""`altmarl sim`: the ROS 2 node graph (sim, fleet, coordinator, recorder) as supervised processes, no ros2 launch."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from altmarl_ros.cli._args import NONNEGATIVE, POSITIVE, POSITIVE_FLOAT
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.nodes.params import SimParams


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `sim` subparser, its handler cmd_sim."""
    p = sub.add_parser("sim", parents=[common], help="run the ROS 2 node graph without ros2 launch",
                       description="Start the sim, fleet and coordinator nodes (and the recorder) as processes on "
                       "real rclpy, supervise them (Ctrl-C stops everything), and print a summary.")
    p.add_argument("--policy", type=Path, required=True, help="run directory or checkpoint.npz from altmarl train")
    p.add_argument("--n", type=POSITIVE, default=SimParams.n, help=f"number of robots (default {SimParams.n})")
    p.add_argument("--k", type=POSITIVE, default=None,
                   help="robots sampled per step (default: the policy's k; another k must match the policy)")
    p.add_argument("--backend", default=None,
                   help="kinematic or pybullet (default: the world config's backend: key, else kinematic)")
    p.add_argument("--robots-per-process", type=POSITIVE, default=SimParams.robots_per_process,
                   help=f"robot nodes per fleet process (default {SimParams.robots_per_process})")
    p.add_argument("--link", default=SimParams.link,
                   help="per_robot (default: a node, odom and cmd_vel per robot) or batched (one pose array and one "
                        "command array per fleet process: hundreds of simulated robots)")
    p.add_argument("--learn", action="store_true", help="online G-LEARN in the coordinator")
    p.add_argument("--checkpoint-out", type=Path, help="where the learning coordinator saves (and resumes) Q")
    p.add_argument("--record", type=Path, help="write the run's topics to MCAP in this directory")
    p.add_argument("--world-config", type=Path, help="YAML with a `world:` mapping")
    p.add_argument("--params-file", type=Path, help="ROS 2 parameters file for every node (config/altmarl.yaml)")
    p.add_argument("--speedup", type=POSITIVE_FLOAT, default=1.0,
                   help="simulated seconds per wall second (> 0, default 1)")
    p.add_argument("--steps", type=NONNEGATIVE, default=30,
                   help="decision steps before stopping (>= 0; 0: until Ctrl-C; default 30)")
    p.add_argument("--timeout", type=POSITIVE_FLOAT, default=3600.0,
                   help="wall-clock limit in seconds (> 0, default 3600)")
    p.add_argument("--seed", type=NONNEGATIVE, default=0, help="seed of the world and every node")
    p.add_argument("--log-dir", type=Path, default=Path("runs/sim-logs"), help="one log file per process")
    p.add_argument("--security", type=Path, help="SROS2 keystore (from altmarl keystore): every node and the "
                   "monitor under DDS Security, ROS_SECURITY_STRATEGY=Enforce")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the graph until --steps decisions (or Ctrl-C, or --timeout) and print its summary."""
    from altmarl_ros.bringup.launch_plan import LaunchConfig
    from altmarl_ros.bringup.system import run_system
    from altmarl_ros.marl.checkpoint import probe_writable

    if args.checkpoint_out:
        where = args.checkpoint_out.parent if args.checkpoint_out.suffix == ".npz" else args.checkpoint_out
        try:
            probe_writable(where)
        except OSError as exc:
            raise AltmarlError(f"--checkpoint-out {args.checkpoint_out} is not writable: {exc.strerror or exc} "
                               f"in {where}") from exc
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise AltmarlError("altmarl sim needs rclpy: source a ROS 2 install (Humble, Jazzy, Kilted) or "
                           "pip install '.[ros]' on a machine without ROS 2") from exc
    config = LaunchConfig(n=args.n, k=args.k or 0, policy=str(args.policy), backend=args.backend or "",
                          robots_per_process=args.robots_per_process, link=args.link, learn=args.learn,
                          record=str(args.record) if args.record else "", world_config=str(args.world_config or ""),
                          seed=args.seed, speedup=args.speedup, decision_steps=args.steps,
                          checkpoint_out=str(args.checkpoint_out or ""),
                          params_file=str(args.params_file or ""), security=str(args.security or ""))
    run = run_system(config, args.log_dir, timeout=args.timeout, progress=not args.quiet)
    s = run.summary
    print(f"ran {s.steps} decision steps in {run.wall_seconds:.1f} s wall (n={args.n}, k={run.k}, "
          f"{run.backend}, speedup {args.speedup})")
    print(f"  discounted return        {s.discounted_return:.3f}")
    print(f"  mode accuracy            {s.mode_accuracy:.3f}")
    print(f"  samples per step         {s.samples_per_step_mean:.2f} (max {s.samples_per_step_max}, k={run.k})")
    print(f"  decisions honoured       {s.decisions_honoured:.3f} (robots in their chosen zone at the next step)")
    print(f"  comm statistics          {run.log.last_stats}")
    if run.died:
        print(f"  processes that died      {run.died} (logs in {args.log_dir})")
    if args.record:
        print(f"  recording                {args.record}")
    return 0
