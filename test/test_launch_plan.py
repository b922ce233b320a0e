"""The node list behind the launch files and `altmarl sim`, without ROS."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

from altmarl_ros.bringup.launch_plan import (
    LAUNCH_ARGUMENTS,
    LaunchConfig,
    LaunchError,
    build_launch_plan,
    config_from_strings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def policy(tiny_run):
    return str(tiny_run(4))


def test_launch_argument_strings_are_typed(policy):
    config = config_from_strings({"n": "30", "k": "4", "policy": policy, "learn": "true", "speedup": "2.5",
                                  "record": ""})
    assert config.n == 30 and config.learn is True and config.speedup == 2.5 and config.record == ""
    with pytest.raises(LaunchError, match="n:='many' is not a valid int"):
        config_from_strings({"n": "many"})
    with pytest.raises(LaunchError, match="learn:='perhaps'"):
        config_from_strings({"learn": "perhaps"})
    with pytest.raises(LaunchError, match="unknown launch arguments"):
        config_from_strings({"robots": "3"})


def test_every_launch_argument_is_a_config_field():
    fields = set(LaunchConfig.__dataclass_fields__) | {"rviz"}
    assert set(LAUNCH_ARGUMENTS) <= fields


def test_params_file_goes_before_the_launch_arguments(policy):
    params = str(ROOT / "config" / "altmarl.yaml")
    plan = build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, params_file=params))
    args = plan[-1].ros_args()
    assert args.index("--params-file") < args.index("-p")
    with pytest.raises(LaunchError, match="params_file"):
        build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, params_file="/nope.yaml"))


def test_the_policy_must_match_k(policy):
    with pytest.raises(LaunchError, match="trained for k=4, but k=3"):
        build_launch_plan(LaunchConfig(n=10, k=3, policy=policy))


def test_k_comes_from_the_policy_and_the_backend_from_the_world_config_unless_given(policy):
    plan = {spec.executable: spec for spec in build_launch_plan(config_from_strings({"n": "10", "policy": policy}))}
    assert plan["coordinator_node"].parameters["k"] == 4  # the policy's
    assert plan["sim_node"].parameters["backend"] == ""  # the sim takes the world config's backend: key
    given = {spec.executable: spec for spec in build_launch_plan(LaunchConfig(n=10, k=4, policy=policy,
                                                                              backend="pybullet"))}
    assert given["sim_node"].parameters["backend"] == "pybullet"
    with pytest.raises(LaunchError, match="k must be >= 1, or 0"):
        build_launch_plan(LaunchConfig(n=10, k=-1, policy=policy))
    with pytest.raises(LaunchError, match="unknown backend 'bullet'"):
        build_launch_plan(LaunchConfig(n=10, policy=policy, backend="bullet"))


def test_sim_node_keeps_wall_time_and_the_others_follow_its_clock(policy):
    plan = build_launch_plan(LaunchConfig(n=10, k=4, policy=policy))
    use_sim_time = {spec.name: spec.parameters["use_sim_time"] for spec in plan}
    assert use_sim_time == {"sim": False, "fleet_0": True, "coordinator": True}


@pytest.mark.parametrize("name", ["sim.launch.py", "hardware.launch.py", "coordinator.launch.py"])
def test_launch_files_compile(name):
    py_compile.compile(str(ROOT / "launch" / name), doraise=True)


def test_coordinator_waits_for_the_listeners_of_its_plan(policy, tmp_path):
    from altmarl_ros.bringup.launch_plan import select_nodes

    plan = build_launch_plan(LaunchConfig(n=54, k=4, policy=policy, robots_per_process=18, record=str(tmp_path)))
    coordinator = next(s for s in plan if s.executable == "coordinator_node")
    assert coordinator.parameters["expected_listeners"] == 3 + 1  # 3 fleets and the recorder
    alone = select_nodes(plan, ("coordinator_node",))
    assert [s.name for s in alone] == ["coordinator"] and alone[0].parameters["expected_listeners"] == 0


def test_relative_input_files_resolve_in_the_package_share_from_any_directory(policy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the source tree: config/world.yaml is not here
    plan = build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, world_config="config/world.yaml",
                                          params_file="config/altmarl.yaml", record="rec"))
    world = Path(plan[0].parameters["world_config"])
    assert world.is_absolute() and world.read_text() == (ROOT / "config" / "world.yaml").read_text()
    assert plan[0].params_file.endswith("config/altmarl.yaml") and Path(plan[0].params_file).is_absolute()
    recorder = next(s for s in plan if s.executable == "recorder_node")
    assert recorder.parameters["output"] == str(tmp_path / "rec")  # outputs: relative to the caller's directory
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "world.yaml").write_text("world:\n  zone_radius: 1.0\n")  # the caller's file wins
    plan = build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, world_config="config/world.yaml"))
    assert plan[0].parameters["world_config"] == str(tmp_path / "config" / "world.yaml")
    with pytest.raises(LaunchError, match="looked up in the working directory, then in the package share"):
        build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, world_config="config/nope.yaml"))


def test_one_robot_per_computer_and_the_leader_pose_source(policy):
    plan = build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, hardware=True, robot_id=3, pose_topic="/odom",
                                          pose_type="pose_stamped", cmd_topic="/cmd_vel"))
    assert [s.executable for s in plan] == ["robot_node", "coordinator_node"]
    robot, coordinator = plan
    assert robot.name == "robot_3_host" and robot.parameters["robot_id"] == 3
    assert robot.parameters["use_sim_time"] is False and coordinator.parameters["use_sim_time"] is False
    assert (coordinator.parameters["leader_pose_topic"], coordinator.parameters["leader_pose_type"]) == \
        ("/odom", "pose_stamped")
    with pytest.raises(LaunchError, match=r"robot_id must lie in \[0, n\)"):
        build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, hardware=True, robot_id=10))
    with pytest.raises(LaunchError, match="robot_id .* is for real robots"):
        build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, robot_id=2))


def test_pose_sources_are_for_hardware_only(policy):
    with pytest.raises(LaunchError, match="pose_topic, pose_type and cmd_topic are for real robots"):
        build_launch_plan(LaunchConfig(n=10, k=4, policy=policy, pose_type="pose_stamped"))


def test_every_documented_launch_argument_is_declared_by_a_launch_file():
    """Every `name:=` the README writes is a launch argument, and every launch argument is documented."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert [name for name in LAUNCH_ARGUMENTS if f"`{name}`" not in readme] == []
    lines = [line for line in readme.splitlines() if "ros2 launch" in line or ":=" in line
             and "--ros-args" not in line and "-p " not in line]
    documented = {name for line in lines for name in re.findall(r"(?<![\w:-])([a-z][a-z_]*):=", line)}
    assert documented <= set(LAUNCH_ARGUMENTS), sorted(documented - set(LAUNCH_ARGUMENTS))


def test_robots_that_do_not_fit_in_a_zone_are_refused_before_anything_starts(policy):
    with pytest.raises(LaunchError, match="n=500 robots do not fit"):
        build_launch_plan(LaunchConfig(n=500, k=4, policy=policy))


def test_the_batched_link_reaches_the_sim_the_fleets_and_the_recorder_and_is_for_simulation_only(policy, tmp_path):
    plan = build_launch_plan(LaunchConfig(n=30, k=4, policy=policy, robots_per_process=10, link="batched",
                                          record=str(tmp_path / "rec")))
    by_name = {spec.name: spec for spec in plan}
    assert by_name["sim"].parameters["link"] == "batched" and by_name["sim"].parameters["robots_per_process"] == 10
    assert [by_name[f"fleet_{i}"].parameters["link"] for i in range(3)] == ["batched"] * 3
    assert by_name["recorder"].parameters["link"] == "batched"
    with pytest.raises(LaunchError, match="link:=batched is for the simulator"):
        build_launch_plan(LaunchConfig(n=30, k=4, policy=policy, link="batched", hardware=True))
    with pytest.raises(LaunchError, match="unknown link 'bulk'; valid links"):
        build_launch_plan(LaunchConfig(n=30, k=4, policy=policy, link="bulk"))
    assert config_from_strings({"link": "batched"}).link == "batched"


def test_one_registry_of_executables_feeds_setup_py_the_supervisor_and_the_plan(policy):
    import runpy

    from altmarl_ros.bringup.executables import EXECUTABLES, console_scripts
    from altmarl_ros.bringup.supervisor import python_command

    root = Path(__file__).resolve().parents[1]
    assert runpy.run_path(str(root / "altmarl_ros" / "bringup" / "executables.py"))["console_scripts"]() \
        == console_scripts()
    for name, exe in EXECUTABLES.items():  # each is a module with main() and a __main__ guard (no rclpy import)
        source = (root / Path(*exe.module.split("."))).with_suffix(".py").read_text()
        assert ("def main(" in source or " as main" in source) and 'if __name__ == "__main__":' in source, name
    plans = [build_launch_plan(config_from_strings({"n": "20", "k": "4", "policy": str(policy), **extra}))
             for extra in ({}, {"record": "/tmp/rec"}, {"robot_id": "3", "hardware": "true"})]
    for spec in (spec for plan in plans for spec in plan):
        assert spec.executable in EXECUTABLES
        assert python_command(spec)[1:3] == ["-m", EXECUTABLES[spec.executable].module]


def test_every_node_default_has_one_home_and_the_plan_sets_only_declared_parameters(policy):
    """nodes.params holds each default: LaunchConfig takes the shared ones from there, config/altmarl.yaml
    repeats them (a file to copy and edit), and a plan passes only parameters its nodes declare."""
    import dataclasses

    import yaml

    from altmarl_ros.nodes.params import NODE_PARAMS, RecorderParams, defaults

    for section, body in yaml.safe_load((ROOT / "config" / "altmarl.yaml").read_text()).items():
        owners = list(NODE_PARAMS.values()) if section == "/**" else [NODE_PARAMS[section]]
        for name, value in body["ros__parameters"].items():
            declared = [defaults(params)[name] for params in owners if name in defaults(params)]
            assert declared, f"config/altmarl.yaml: {section}.{name} is no parameter of that node"
            assert all(type(value) is type(d) and value == d for d in declared), (section, name, value, declared)
    launch = {field.name: field.default for field in dataclasses.fields(LaunchConfig)}
    for params in NODE_PARAMS.values():
        for name, default in defaults(params).items():
            # paths have no default; a launch's robot_id -1 means fleets, not a robot; a recorder started by
            # hand records no robot's topics unless given n
            special = ("policy", "world_config", "checkpoint_out", "robot_id") + (("n",) if params is RecorderParams
                                                                                  else ())
            if name in launch and name not in special:
                assert launch[name] == default, (params.__name__, name, launch[name], default)
    executable_params = {"sim_node": "sim", "coordinator_node": "coordinator", "fleet_node": "fleet",
                         "robot_node": "robot", "recorder_node": "recorder"}
    plans = [build_launch_plan(config_from_strings({"n": "20", "policy": policy, **extra}))
             for extra in ({"record": "/tmp/rec", "link": "batched", "learn": "true"},
                           {"robot_id": "3", "hardware": "true"})]
    for spec in (spec for plan in plans for spec in plan):
        declared = set(defaults(NODE_PARAMS[executable_params[spec.executable]])) | {"use_sim_time"}
        assert set(spec.parameters) <= declared, (spec.executable, sorted(set(spec.parameters) - declared))
