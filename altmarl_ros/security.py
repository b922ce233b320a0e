"""ROS 2 security (SROS2) for a launch plan: one enclave per process, one keystore for the swarm.

With `security:=<keystore>` every node process runs with `--enclave /altmarl/<its name>` and
ROS_SECURITY_ENABLE=true, ROS_SECURITY_STRATEGY=Enforce: DDS Security authenticates every
participant against the keystore's CA, checks its permissions and encrypts the traffic, so a
participant without an enclave of this keystore on the same domain receives nothing and cannot
inject anything. `altmarl keystore <dir> --n ...` (or `python -m altmarl_ros.security`) creates the
keystore and the enclaves a plan needs, with `ros2 security` (sros2; any ROS 2 install).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from altmarl_ros.marl.errors import AltmarlError

ENCLAVE_ROOT = "/altmarl"
OBSERVERS = ("monitor",)  # `altmarl sim`'s passive monitor joins the graph too


class SecurityError(AltmarlError, ValueError):
    """The keystore cannot secure this plan; nothing was started."""


def enclave_of(process_name: str) -> str:
    return f"{ENCLAVE_ROOT}/{process_name}"


def security_env(keystore: str) -> dict[str, str]:
    """The environment every secured process gets (Enforce: no fallback to an unsecured participant)."""
    return {"ROS_SECURITY_KEYSTORE": str(Path(keystore).absolute()), "ROS_SECURITY_ENABLE": "true",
            "ROS_SECURITY_STRATEGY": "Enforce"}


def missing_enclaves(keystore: str | Path, enclaves: Iterable[str]) -> list[str]:
    """The enclaves of `enclaves` the keystore has no key and permissions for."""
    root = Path(keystore) / "enclaves"
    need = ("cert.pem", "key.pem", "permissions.p7s", "governance.p7s", "identity_ca.cert.pem")
    return [e for e in enclaves if not all((root / e.lstrip("/") / name).is_file() for name in need)]


def create_keystore(keystore: str | Path, enclaves: Iterable[str]) -> list[str]:
    """Create the keystore (if new) and every enclave it lacks; returns those created."""
    missing = missing_enclaves(keystore, enclaves)
    if not missing:
        return []
    if shutil.which("ros2") is None:
        raise SecurityError("creating a keystore needs `ros2 security` (sros2, part of any ROS 2 install): "
                            "source a ROS 2 first")
    result = subprocess.run(["ros2", "security", "generate_artifacts", "-k", str(keystore), "-e", *missing],
                            capture_output=True, text=True)
    still = missing_enclaves(keystore, missing)
    if result.returncode != 0 or still:
        raise SecurityError(f"ros2 security generate_artifacts failed for {still or missing} in {keystore}: "
                            f"{(result.stderr or result.stdout).strip()[-500:]}")
    return missing


def plan_enclaves(names: Iterable[str], observers: Iterable[str] = OBSERVERS) -> list[str]:
    return [enclave_of(name) for name in (*names, *observers)]


def create_for_plan(keystore: str | Path, n: int, robots_per_process: int = 25, robot_ids: Iterable[int] = (),
                    record: bool = False, hardware: bool = False) -> list[str]:
    """The keystore and every enclave of the plan these launch arguments give (plus one robot_node per
    id in `robot_ids`, for robots on their own computers, and the monitor); returns the enclaves created."""
    from altmarl_ros.bringup.launch_plan import LaunchConfig, assemble_plan

    config = LaunchConfig(n=n, k=1, robots_per_process=robots_per_process, hardware=hardware,
                          record="record" if record else "")
    names = [spec.name for spec in assemble_plan(config)]
    for robot_id in robot_ids:
        if not 0 <= robot_id < n:
            raise SecurityError(f"robot id {robot_id} outside [0, {n})")
        names += [spec.name for spec in assemble_plan(LaunchConfig(n=n, k=1, hardware=True, robot_id=robot_id))
                  if spec.executable == "robot_node"]
    return create_keystore(keystore, plan_enclaves(names))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keystore", help="keystore directory (created if new; existing enclaves are kept)")
    parser.add_argument("--n", type=int, default=20, help="robots of the plan (default 20)")
    parser.add_argument("--robots-per-process", type=int, default=25, help="robots per fleet process (default 25)")
    parser.add_argument("--robot-id", type=int, action="append", default=[],
                        help="a robot on its own computer: its robot_node's enclave (repeatable)")
    parser.add_argument("--record", action="store_true", help="include the recorder's enclave")
    parser.add_argument("--hardware", action="store_true", help="no sim node (hardware.launch.py)")


def run_from_arguments(args: argparse.Namespace) -> int:
    created = create_for_plan(args.keystore, args.n, args.robots_per_process, args.robot_id, args.record,
                              args.hardware)
    print(f"keystore {args.keystore}: {len(created)} enclaves created"
          + (f" ({', '.join(created)})" if created else " (all there already)")
          + f"; launch with security:={Path(args.keystore).absolute()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The keystore and enclaves for the plan these launch arguments give (what `altmarl keystore` runs)."""
    parser = argparse.ArgumentParser(prog="altmarl keystore", description=main.__doc__)
    add_arguments(parser)
    try:
        return run_from_arguments(parser.parse_args(argv))
    except AltmarlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
