"""Run the whole node graph without `ros2 launch`: supervisor + passive monitor, then a summary.

Used by `altmarl sim` and by the integration tests. rclpy is imported lazily so
the rest of the package works without ROS 2.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from altmarl_ros.launch_plan import LaunchConfig, NodeSpec, build_launch_plan, robot_ranges
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.security import enclave_of, security_env
from altmarl_ros.supervisor import Supervisor, python_command

log = logging.getLogger(__name__)


@dataclass
class SystemRun:
    summary: object  # nodes.monitor.RunSummary
    log: object  # nodes.monitor.RunLog
    exit_codes: dict[str, int | None]
    died: list[str]  # children that exited on their own before the end
    wall_seconds: float


DRAIN_SECONDS = 1.0  # after the coordinator's normal exit, its last messages may still be in flight
DRAIN_MAX_SECONDS = 5.0  # ... and up to this long while the last step's statistics have not been taken in


def stop_grace(config: LaunchConfig) -> float:
    """Seconds a child gets after SIGINT (and again after SIGTERM): 10 s, plus 40 ms per robot of the
    largest fleet process (destroying its nodes announces each removal to the graph)."""
    return 10.0 + 0.04 * min(config.n, config.robots_per_process)


def run_system(config: LaunchConfig, log_dir: str | Path, timeout: float,
               on_step: Callable[[int, Supervisor], None] | None = None, progress: bool = False,
               command: Callable[[NodeSpec], list[str]] = python_command) -> SystemRun:
    """Start every node of the plan, watch until the coordinator finishes (decision_steps) or `timeout`.

    `command` makes a node's command line (default: this interpreter); see Supervisor."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from altmarl_ros.nodes.common import load_policy, load_world
    from altmarl_ros.nodes.monitor import MonitorNode, summarise

    plan = build_launch_plan(config)  # validates before anything starts
    trained = load_policy(config.policy)
    world = load_world(config.world_config, trained.game.num_local_states)
    secure = security_env(config.security) if config.security else {}
    supervisor = Supervisor(plan, log_dir, env={**os.environ, **secure}, command=command)
    # the monitor is a participant too: enrolled with its own enclave (rcl reads the variables at init)
    saved = {name: os.environ.get(name) for name in secure}
    os.environ.update(secure)
    try:
        rclpy.init(args=["--ros-args", "--enclave", enclave_of("monitor")] if secure else [])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    batches = robot_ranges(config.n, config.robots_per_process) if config.link == "batched" else None
    monitor = MonitorNode(config.n, world, batches)
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    supervisor.start()
    start = time.monotonic()
    died: list[str] = []
    seen_steps = 0
    try:
        while time.monotonic() - start < timeout:
            executor.spin_once(timeout_sec=0.05)
            if len(monitor.log.steps) > seen_steps:
                seen_steps = len(monitor.log.steps)
                if progress:
                    stats = monitor.log.last_stats
                    print(f"\rstep {stats['step']}: a_g={stats['global_action']} k_eff={stats['k_effective']} "
                          f"replies {stats['replies']} timeouts {stats['timeouts']} dead {stats['dead']}   ",
                          end="", flush=True)
                if on_step is not None:
                    on_step(seen_steps, supervisor)
            for child in supervisor.newly_dead():
                name = child.spec.name
                code = child.process.returncode
                if name == "coordinator" and code == 0 and config.decision_steps:
                    raise StopIteration
                died.append(name)
                log.error("%s exited with code %s; last lines of its log:\n%s", name, code, supervisor.tail(name))
                if name in ("coordinator", "sim"):
                    raise AltmarlError(f"{name} died (exit code {code}); see {child.log_path}")
        else:
            log.warning("stopped after the %.0f s timeout", timeout)
    except StopIteration:  # the coordinator finished: take in what it published last (bounded)
        drained = time.monotonic()
        while time.monotonic() - drained < DRAIN_MAX_SECONDS:
            executor.spin_once(timeout_sec=0.05)
            last_seen = monitor.log.last_stats.get("step", 0) >= config.decision_steps
            if last_seen and time.monotonic() - drained >= DRAIN_SECONDS:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if progress:
            print()
        # The monitor leaves the graph before any child is stopped: a child that has to be killed
        # (the last resort of stop()) can leave a Fast DDS shared-memory port locked, and a
        # participant that talks to that port afterwards, as destroy_node() does when it announces
        # its removal, can block on the lock for good. rclpy.try_shutdown() only sets a flag.
        try:
            monitor.destroy_node()
        finally:
            codes = supervisor.stop(stop_grace(config))
            rclpy.try_shutdown()
    summary = summarise(monitor.log, trained.game.with_n(config.n), trained.local_policy)
    return SystemRun(summary, monitor.log, codes, died, time.monotonic() - start)
