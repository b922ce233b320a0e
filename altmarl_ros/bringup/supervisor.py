"""Start a launch plan as processes (real rclpy, no `ros2 launch`), watch them, stop them cleanly.

Each node runs as `python -m altmarl_ros.nodes.<executable>` with its
`--ros-args`, in its own process group, output to `<log_dir>/<name>.log`.
`stop()` sends SIGINT (rclpy's clean shutdown), then SIGTERM, then SIGKILL,
each after a bounded wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from altmarl_ros.bringup.executables import EXECUTABLES
from altmarl_ros.bringup.launch_plan import NodeSpec


@dataclass
class Child:
    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path
    reported: bool = False


def python_command(spec: NodeSpec) -> list[str]:
    """A node of the plan in this interpreter (this process's rclpy and ROS 2)."""
    return [sys.executable, "-m", EXECUTABLES[spec.executable].module, *spec.ros_args()]


class Supervisor:
    def __init__(self, plan: list[NodeSpec], log_dir: str | Path, env: dict[str, str] | None = None,
                 command: Callable[[NodeSpec], list[str]] = python_command) -> None:
        """`command` turns a node into a command line: another one runs nodes elsewhere (another ROS 2
        distribution, a network namespace)."""
        self.plan = plan
        self.log_dir = Path(log_dir)
        self.env = dict(os.environ if env is None else env)
        self.children: list[Child] = []
        self._command = command

    def command(self, spec: NodeSpec) -> list[str]:
        return self._command(spec)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.plan:
            self.children.append(self._spawn(spec, self.log_dir / f"{spec.name}.log", "wb"))

    def _spawn(self, spec: NodeSpec, log_path: Path, mode: str) -> Child:
        with open(log_path, mode) as log:
            process = subprocess.Popen(self.command(spec), stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        return Child(spec, process, log_path)

    def restart(self, name: str) -> None:
        """Kill one child abruptly and start it again, its log appended (a crash and a restart)."""
        child = self.child(name)
        self.kill(name)
        child.process.wait()
        self.children[self.children.index(child)] = self._spawn(child.spec, child.log_path, "ab")

    def newly_dead(self) -> list[Child]:
        """Children that exited since the last call (each reported once)."""
        dead = []
        for child in self.children:
            if not child.reported and child.process.poll() is not None:
                child.reported = True
                dead.append(child)
        return dead

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    def kill(self, name: str) -> None:
        """Kill one child abruptly (fault injection)."""
        os.killpg(self.child(name).process.pid, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> dict[str, int | None]:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [c for c in self.children if c.process.poll() is None]
            if not alive:
                break
            for child in alive:
                try:
                    os.killpg(child.process.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(c.process.poll() is None for c in alive):
                time.sleep(0.05)
        return {c.spec.name: c.process.poll() for c in self.children}

    def tail(self, name: str, lines: int = 20) -> str:
        text = self.child(name).log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
