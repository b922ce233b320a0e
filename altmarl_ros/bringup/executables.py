"""The node executables: the one list that setup.py's console scripts, the supervisor and the launch plan use.

Plain Python without imports from the package, so that setup.py can read it before anything is installed.
"""

from __future__ import annotations

from typing import NamedTuple


class Executable(NamedTuple):
    module: str  # run as `python -m <module>` by the supervisor; its `main` is the console script
    node_name: str  # the name the executable gives its main node (a fleet also hosts one node per robot)
    listens: bool  # subscribes to the coordinator's broadcast (the coordinator waits for these)


EXECUTABLES: dict[str, Executable] = {
    "sim_node": Executable("altmarl_ros.nodes.sim_node", "sim", False),
    "fleet_node": Executable("altmarl_ros.nodes.fleet_node", "fleet", True),
    "robot_node": Executable("altmarl_ros.nodes.robot_node", "robot", True),
    "coordinator_node": Executable("altmarl_ros.nodes.coordinator_node", "coordinator", False),
    "recorder_node": Executable("altmarl_ros.nodes.recorder_node", "recorder", True),
}


def console_scripts() -> list[str]:
    """setup.py's entry points of the node executables."""
    return [f"{name} = {exe.module}:main" for name, exe in EXECUTABLES.items()]
