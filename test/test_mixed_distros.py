"""Two ROS 2 distributions in one graph: real fleets mix robots of different ages.

The coordinator runs on a second ROS 2 (CI: the minimal Jazzy of ../shared/ros2, Cyclone DDS)
while the sim and the robots run on this interpreter's rclpy (CI: the Kilted wheels, Fast DDS),
and the other way round. The protocol must not notice: k requests and at most k replies per
step, every process exits cleanly.

Set ALTMARL_SECOND_ROS to a bash file that, sourced, gives a shell the other ROS 2 with
altmarl_ros built and sourced (its venv, its setup.bash, the workspace's install/setup.bash);
`.ci/run` writes one. Skipped, saying so, without it.
"""

from __future__ import annotations

import os
import random
import shlex
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
SECOND_ROS = os.environ.get("ALTMARL_SECOND_ROS", "")
if not SECOND_ROS or not Path(SECOND_ROS).is_file():
    pytest.skip("ALTMARL_SECOND_ROS is not set to a bash file that sources a second ROS 2 with altmarl_ros built "
                "(.ci/run writes one for the Jazzy in ../shared/ros2)", allow_module_level=True)

from altmarl_ros.bringup.launch_plan import LaunchConfig, NodeSpec  # noqa: E402
from altmarl_ros.bringup.supervisor import python_command  # noqa: E402
from altmarl_ros.bringup.system import run_system  # noqa: E402

STEPS = 10


@pytest.fixture(scope="module")
def trained(tiny_run):
    return tiny_run(4)


def second_ros_command(spec: NodeSpec) -> list[str]:
    """The node as `ros2 run` starts it on the second ROS 2 (its own Python, rclpy and RMW)."""
    line = " ".join(shlex.quote(part) for part in ["ros2", "run", "altmarl_ros", spec.executable, *spec.ros_args()])
    # that ROS's own environment only: nothing of this interpreter's venv or RMW choice leaks in
    return ["env", "-u", "VIRTUAL_ENV", "-u", "PYTHONPATH", "-u", "RMW_IMPLEMENTATION", "bash", "-c",
            f"set -e; . {shlex.quote(SECOND_ROS)}; echo \"second ROS: $ROS_DISTRO $RMW_IMPLEMENTATION\"; exec {line}"]


@pytest.mark.parametrize("on_second", [("coordinator_node",), ("sim_node", "fleet_node")],
                         ids=["coordinator-on-second-ros", "robots-on-second-ros"])
def test_one_graph_across_two_ros_distributions(trained, tmp_path, monkeypatch, on_second):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated since Iron; LOCALHOST above
    config = LaunchConfig(n=12, k=4, policy=str(trained), world_config=str(trained / "world.yaml"), speedup=4.0,
                          decision_steps=STEPS, robots_per_process=6, seed=1)

    def command(spec: NodeSpec) -> list[str]:
        return second_ros_command(spec) if spec.executable in on_second else python_command(spec)

    run = run_system(config, tmp_path / "logs", timeout=150, command=command)
    logs = {path.stem: path.read_text(errors="replace") for path in (tmp_path / "logs").glob("*.log")}
    assert not run.died, logs
    assert all(code == 0 for code in run.exit_codes.values()), (run.exit_codes, logs)
    stats = run.log.last_stats
    assert stats["steps"] == STEPS and stats["requests"] == 4 * STEPS and stats["rejected"] == 0
    assert stats["late"] <= stats["timeouts"]  # a reply after its deadline is counted, never accepted
    assert stats["replies"] <= stats["requests"]
    assert all(len(ids) == 4 and len(set(ids)) == 4 for ids in run.log.requested.values())
    assert all(count <= 4 for count in run.log.samples_per_step.values())
    assert any(step.k_effective == 4 for step in run.log.steps)  # replies do cross the distributions
    # and the two sides really are two ROS 2s with two middlewares
    from rclpy.utilities import get_rmw_implementation_identifier

    here = get_rmw_implementation_identifier()
    for name, text in logs.items():
        second = [line for line in text.splitlines() if line.startswith("second ROS:")]
        if any(name.startswith(executable.removesuffix("_node")) for executable in on_second):
            assert second and second[0].split()[2] and second[0].split()[3] != here, (name, second, here)
        else:
            assert not second, name
