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
from typing import Any

from altmarl_ros.bringup.launch_plan import LaunchConfig, NodeSpec, load_plan, robot_ranges
from altmarl_ros.bringup.supervisor import Supervisor, python_command
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.security import enclave_of, security_env

log = logging.getLogger(__name__)


@dataclass
class SystemRun:
    summary: object  # nodes.monitor.RunSummary
    log: object  # nodes.monitor.RunLog
    exit_codes: dict[str, int | None]
    died: list[str]  # children that exited on their own before the end
    wall_seconds: float
    k: int  # robots sampled per step (the policy's unless the config gave it)
    backend: str  # the sim's backend (the config's, else the world config's)


DRAIN_SECONDS = 1.0  # after the coordinator's normal exit, its last messages may still be in flight
DRAIN_MAX_SECONDS = 5.0  # ... and up to this long while the last step's statistics have not been taken in


def stop_grace(config: LaunchConfig) -> float:
    """Seconds a child gets after SIGINT (and again after SIGTERM): 10 s, plus 40 ms per robot of the
    largest fleet process (destroying its nodes announces each removal to the graph)."""
    return 10.0 + 0.04 * min(config.n, config.robots_per_process)


class RunObserver:
    """Hooks into a `run_system` run; the default hooks do nothing. Subclass and override what you need.

    The order is: `started` (the monitor exists, no child runs yet), `spawned` (every child started),
    `on_stats` for each step's statistics the monitor accepts (in order, with the wall time it got them),
    `stopping` (the children still run), `stopped` (every child has exited).
    """

    def started(self, monitor: Any, supervisor: Supervisor) -> None:
        """Before any child starts: e.g. subscribe the monitor node to more topics."""

    def spawned(self, supervisor: Supervisor) -> None:
        """Every child process has been started."""

    def on_stats(self, record: Any, stats: dict[str, Any], supervisor: Supervisor) -> bool:
        """One step's statistics (`monitor.StepRecord` and the coordinator's JSON); True ends the run now,
        the way the coordinator's own end does (its last messages are still taken in)."""
        return False

    def stopping(self, supervisor: Supervisor) -> None:
        """The run is over and the children are about to be stopped."""

    def stopped(self, exit_codes: dict[str, int | None], seconds: float) -> None:
        """Every child has exited (`exit_codes`), `seconds` after stopping began."""


def _take(pending: list) -> list:
    """Empty `pending` and return what it held, in order."""
    taken = pending[:]
    pending.clear()
    return taken


def run_system(config: LaunchConfig, log_dir: str | Path, timeout: float, observer: RunObserver | None = None,
               progress: bool = False, command: Callable[[NodeSpec], list[str]] = python_command) -> SystemRun:
    """Start every node of the plan, watch until the coordinator finishes (decision_steps), the observer ends
    the run, or `timeout`. `command` makes a node's command line (default: this interpreter); see Supervisor."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from altmarl_ros.bringup.monitor import MonitorNode, summarise

    observer = observer or RunObserver()
    plan, trained, world = load_plan(config)  # validated before anything starts; policy and world read once
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
    accepted: list[tuple[Any, dict[str, Any]]] = []  # what the monitor took in since the loop last looked
    monitor = MonitorNode(config.n, world, batches, on_stats=lambda record, stats: accepted.append((record, stats)))
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    observer.started(monitor, supervisor)
    supervisor.start()
    observer.spawned(supervisor)
    start = time.monotonic()
    died: list[str] = []
    finished = False  # the coordinator ended by itself after decision_steps, or the observer ended the run
    codes: dict[str, int | None] = {}
    try:
        while not finished and time.monotonic() - start < timeout:
            executor.spin_once(timeout_sec=0.05)
            for record, stats in _take(accepted):
                if progress:
                    print(f"\rstep {stats['step']}: a_g={stats['global_action']} k_eff={stats['k_effective']} "
                          f"replies {stats['replies']} timeouts {stats['timeouts']} dead {stats['dead']}   ",
                          end="", flush=True)
                finished = observer.on_stats(record, stats, supervisor) or finished
            for child in supervisor.newly_dead():
                name = child.spec.name
                code = child.process.returncode
                if name == "coordinator" and code == 0 and config.decision_steps:
                    finished = True
                    continue
                died.append(name)
                log.error("%s exited with code %s; last lines of its log:\n%s", name, code, supervisor.tail(name))
                if name in ("coordinator", "sim"):
                    raise AltmarlError(f"{name} died (exit code {code}); see {child.log_path}")
        if finished:  # take in what the coordinator published last (bounded)
            drained = time.monotonic()
            while time.monotonic() - drained < DRAIN_MAX_SECONDS:
                executor.spin_once(timeout_sec=0.05)
                accepted.clear()
                last_seen = monitor.log.last_stats.get("step", 0) >= config.decision_steps
                if last_seen and time.monotonic() - drained >= DRAIN_SECONDS:
                    break
        else:
            log.warning("stopped after the %.0f s timeout", timeout)
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
            observer.stopping(supervisor)
            monitor.destroy_node()
        finally:
            stopping = time.monotonic()
            codes = supervisor.stop(stop_grace(config))
            rclpy.try_shutdown()
            observer.stopped(codes, time.monotonic() - stopping)
    summary = summarise(monitor.log, trained.game.with_n(config.n), trained.local_policy)
    return SystemRun(summary, monitor.log, codes, died, time.monotonic() - start, trained.k,
                     config.backend or world.backend)
