"""The node list of a running system, from one config: used by launch files and by `altmarl sim`.

`ros2 launch` has no wheels, so the launch files stay thin wrappers over
`build_launch_plan`; the same function gives `altmarl sim` its processes, and it
is tested without ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from altmarl_ros.bringup.executables import EXECUTABLES
from altmarl_ros.marl.errors import AltmarlError
from altmarl_ros.marl.game import check_population
from altmarl_ros.nodes.params import CoordinatorParams, FleetParams, SimParams
from altmarl_ros.nodes.topics import LINKS
from altmarl_ros.sim.backend import BACKENDS

if TYPE_CHECKING:  # the run module imports the games: only when a plan is validated
    from altmarl_ros.runs import Run
    from altmarl_ros.sim.config import WorldConfig

PACKAGE = "altmarl_ros"


class LaunchError(AltmarlError, ValueError):
    """The launch configuration is invalid; nothing was started."""


@dataclass(frozen=True)
class LaunchConfig:
    """One launch: every launch argument. Defaults the nodes share are the nodes' own (`nodes.params`)."""

    n: int = SimParams.n
    k: int = CoordinatorParams.k  # robots sampled per step; 0 = the policy's k (a k given must match it)
    policy: str = ""  # checkpoint written by `altmarl train` (required)
    backend: str = SimParams.backend  # kinematic | pybullet; "" = the world config's `backend:` (else kinematic)
    robots_per_process: int = SimParams.robots_per_process
    link: str = SimParams.link  # sim <-> fleets: per_robot (odom / cmd_vel per robot) | batched (one array per fleet)
    learn: bool = CoordinatorParams.learn
    record: str = ""  # MCAP output directory ("" = no recording)
    rviz: bool = False
    hardware: bool = False  # no sim node: real robots provide odom / take cmd_vel
    pose_topic: str = FleetParams.pose_topic  # per-robot pose topic (relative: under robot_<i>/)
    pose_type: str = FleetParams.pose_type  # odometry | pose_stamped (motion capture)
    cmd_topic: str = FleetParams.cmd_topic
    world_config: str = ""  # YAML with a `world:` mapping ("" = defaults)
    zones: int = 0  # zones of the arena / zone map; 0 = take them from the policy
    seed: int = SimParams.seed
    use_sim_time: bool = True
    speedup: float = SimParams.speedup  # sim: simulated seconds per wall second
    decision_steps: int = CoordinatorParams.decision_steps  # coordinator stops after this many steps (0 = never)
    checkpoint_out: str = ""  # where the learning coordinator saves its Q table
    liveness_timeout: float = CoordinatorParams.liveness_timeout  # s without a message: presumed dead
    params_file: str = ""  # a ROS 2 parameters file applied to every node (see config/altmarl.yaml)
    robot_id: int = -1  # >= 0: one robot_node for this robot (one robot per computer) instead of fleets
    security: str = ""  # SROS2 keystore directory: every node under DDS Security, Enforce ("" = off)


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    params_file: str = ""
    enclave: str = ""  # SROS2 enclave of the process ("" = no security)

    def ros_args(self) -> list[str]:
        """The `--ros-args` part of a command line: the main node's name, parameters, remaps.

        The rename names its target node, so it does not rename the robot nodes a fleet hosts.
        """
        args = ["--ros-args", "-r", f"{EXECUTABLES[self.executable].node_name}:__node:={self.name}"]
        if self.params_file:
            args += ["--params-file", self.params_file]  # before -p, so launch arguments win
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_param_text(value)}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        if self.enclave:
            args += ["--enclave", self.enclave]
        return args


# launch arguments of launch/sim.launch.py: name -> description (defaults come from LaunchConfig)
LAUNCH_ARGUMENTS = {
    "n": "number of robots",
    "k": "robots the coordinator samples per step (0 = the policy's k; another k must match the policy)",
    "policy": "checkpoint from `altmarl train` (run directory or .npz)",
    "backend": "kinematic | pybullet ('' = the world config's backend: key, else kinematic)",
    "robots_per_process": "robot nodes per fleet process",
    "link": "per_robot (a node and odom / cmd_vel topics per robot) | batched (sim only: one pose array and one "
            "command array per fleet process; for hundreds of simulated robots)",
    "learn": "online G-LEARN in the coordinator",
    "record": "MCAP output directory ('' = no recording)",
    "rviz": "start RViz with config/altmarl.rviz",
    "world_config": "YAML with a `world:` mapping",
    "speedup": "simulated seconds per wall second",
    "seed": "seed of the world and every node",
    "checkpoint_out": "where the learning coordinator saves and resumes its Q table",
    "hardware": "no sim node: real robots provide poses and take cmd_vel",
    "pose_topic": "per-robot pose topic, relative to robot_<i>/",
    "pose_type": "odometry | pose_stamped",
    "cmd_topic": "per-robot command topic, relative to robot_<i>/",
    "zones": "zones of the zone map (0 = from the policy)",
    "params_file": "ROS 2 parameters file for every node (config/altmarl.yaml)",
    "use_sim_time": "follow /clock (the sim's); false on real robots and for nodes started without the sim",
    "robot_id": "one robot_node for this robot id (robot.launch.py: one robot per computer); -1 = fleets",
    "security": "SROS2 keystore directory (`altmarl keystore`): every node under DDS Security, Enforce; '' = off",
}
# input files a relative path may name inside the installed package (e.g. config/world.yaml)
PACKAGE_FILES = ("world_config", "params_file")
# paths the nodes get absolute, so that their working directory does not matter
USER_PATHS = ("policy", "record", "checkpoint_out", "security")


def package_share() -> Path | None:
    """The package's share directory (launch/, config/, urdf/): the ament index, else this source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):  # not installed there; OSError: no AMENT_PREFIX_PATH at all
            pass
    source = Path(__file__).resolve().parents[2]  # the checkout: altmarl_ros/bringup/ -> ./
    return source if (source / "config").is_dir() else None


def resolve_paths(config: LaunchConfig) -> LaunchConfig:
    """Absolute paths for every path of a config; a relative input file is looked up in the working
    directory, then in the package share (so `world_config:=config/world.yaml` works from anywhere)."""
    changes = {}
    for name in PACKAGE_FILES + USER_PATHS:
        text = getattr(config, name)
        if not text:
            continue
        path = Path(text).expanduser()
        share = package_share()
        if (name in PACKAGE_FILES and not path.is_absolute() and not path.exists() and share is not None
                and (share / path).exists()):
            path = share / path
        changes[name] = str(path.absolute())
    return LaunchConfig(**{**config.__dict__, **changes})


def config_from_strings(values: dict[str, str]) -> LaunchConfig:
    """A LaunchConfig from launch-argument strings (types from the defaults); unknown names are an error."""
    defaults = LaunchConfig()
    unknown = sorted(set(values) - set(defaults.__dataclass_fields__))
    if unknown:
        raise LaunchError(f"unknown launch arguments {unknown}; valid: {sorted(LAUNCH_ARGUMENTS)}")
    typed: dict[str, Any] = {}
    for name, text in values.items():
        default = getattr(defaults, name)
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                typed[name] = text.lower() in ("true", "1")
            elif isinstance(default, int):
                typed[name] = int(text)
            elif isinstance(default, float):
                typed[name] = float(text)
            else:
                typed[name] = text
        except ValueError as exc:
            raise LaunchError(f"launch argument {name}:={text!r} is not a valid {type(default).__name__}") from exc
    return LaunchConfig(**{**defaults.__dict__, **typed})


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


def robot_ranges(n: int, robots_per_process: int) -> list[tuple[int, int]]:
    """Split robot ids 0..n-1 into contiguous [first, last) ranges, one per fleet process."""
    processes = math.ceil(n / robots_per_process)
    size = math.ceil(n / processes)
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def validate(config: LaunchConfig) -> tuple[Run, WorldConfig]:
    """Everything that can be checked before a process starts; the error names the value and what is valid.
    Returns the policy's run and the world, read and checked on the way."""
    if config.k < 0:
        raise LaunchError(f"k must be >= 1, or 0 for the policy's k; got {config.k}")
    try:
        check_population(config.n, config.k or 1)  # n first; a k given, before the policy is read
    except AltmarlError as exc:
        raise LaunchError(str(exc)) from exc
    if config.backend and config.backend not in BACKENDS:
        raise LaunchError(f"unknown backend {config.backend!r}; valid backends: {list(BACKENDS)}")
    if config.link not in LINKS:
        raise LaunchError(f"unknown link {config.link!r}; valid links: {list(LINKS)}")
    if config.link == "batched" and config.hardware:
        raise LaunchError("link:=batched is for the simulator (it publishes one pose array per fleet process); "
                          "real robots use their own topics: link:=per_robot with hardware:=true")
    if config.robots_per_process < 1:
        raise LaunchError(f"robots_per_process must be >= 1, got {config.robots_per_process}")
    if not config.policy:
        raise LaunchError("policy is required: the checkpoint written by `altmarl train` (run dir or .npz)")
    if not Path(config.policy).exists():
        raise LaunchError(f"policy file {config.policy} does not exist")
    if config.pose_type not in ("odometry", "pose_stamped"):
        raise LaunchError(f"pose_type must be 'odometry' or 'pose_stamped', got {config.pose_type!r}")
    if not config.speedup > 0:
        raise LaunchError(f"speedup must be > 0, got {config.speedup}")
    for name in PACKAGE_FILES:
        path = getattr(config, name)
        if path and not Path(path).is_file():
            share = package_share()
            raise LaunchError(f"{name} file {path} does not exist (a relative path is looked up in the working "
                              f"directory, then in the package share {share})")
    if not config.hardware and (config.pose_topic, config.pose_type, config.cmd_topic) != (
            LaunchConfig.pose_topic, LaunchConfig.pose_type, LaunchConfig.cmd_topic):
        raise LaunchError("pose_topic, pose_type and cmd_topic are for real robots (hardware:=true): the sim "
                          "publishes robot_<i>/odom (nav_msgs/Odometry) and takes robot_<i>/cmd_vel")
    if config.robot_id >= config.n:
        raise LaunchError(f"robot_id must lie in [0, n) = [0, {config.n}) (or -1 for fleets), got {config.robot_id}")
    if config.robot_id >= 0 and not config.hardware:
        raise LaunchError("robot_id (one robot per computer) is for real robots: set hardware:=true")
    from altmarl_ros.runs import load

    trained = load(config.policy, expect_task="zones", expect_zones=config.zones or None)
    if config.k and trained.k != config.k:
        raise LaunchError(f"the policy was trained for k={trained.k}, but k={config.k} was asked for "
                          "(leave k out to take the policy's)")
    try:
        check_population(config.n, trained.k)
    except AltmarlError as exc:
        raise LaunchError(str(exc)) from exc
    from altmarl_ros.sim.config import WorldConfig, check_capacity
    from altmarl_ros.tasks.config import config_from_mapping, load_yaml

    values = dict(load_yaml(config.world_config).get("world", {})) if config.world_config else {}
    try:  # every robot needs a parking slot in every zone: refuse before a process starts
        world = config_from_mapping(WorldConfig, {**values, "zones": trained.game.num_local_states})
        check_capacity(world, config.n)
    except AltmarlError as exc:
        raise LaunchError(str(exc)) from exc
    return trained, world


def build_launch_plan(config: LaunchConfig) -> list[NodeSpec]:
    """Every node of the system with its parameters; validation errors come before anything starts."""
    return load_plan(config)[0]


def load_plan(config: LaunchConfig) -> tuple[list[NodeSpec], Run, WorldConfig]:
    """build_launch_plan's nodes, and the policy's run and the world it read to check them (handed on, not
    read again)."""
    config = resolve_paths(config)
    run, world = validate(config)
    config = replace(config, k=run.k)  # k comes from the policy unless given (and then it matches)
    plan = assemble_plan(config)
    if config.security:
        from altmarl_ros.security import enclave_of, missing_enclaves, plan_enclaves

        missing = missing_enclaves(config.security, plan_enclaves([spec.name for spec in plan]))
        if missing:
            raise LaunchError(f"keystore {config.security} has no enclave for {missing}: create them with "
                              f"`altmarl keystore {config.security} --n {config.n}` (and the same arguments)")
        plan = [replace(spec, enclave=enclave_of(spec.name)) for spec in plan]
    return plan, run, world


def assemble_plan(config: LaunchConfig) -> list[NodeSpec]:
    """The nodes a (validated) config gives, with their parameters."""
    common = {"use_sim_time": config.use_sim_time and not config.hardware, "policy": config.policy,
              "n": config.n, "world_config": config.world_config, "seed": config.seed}
    plan: list[NodeSpec] = []
    if not config.hardware:
        plan.append(NodeSpec("sim_node", "sim", parameters={**common, "use_sim_time": False,
                                                             "backend": config.backend,
                                                             "speedup": config.speedup, "link": config.link,
                                                             "robots_per_process": config.robots_per_process}))
    topics = {"pose_topic": config.pose_topic, "pose_type": config.pose_type, "cmd_topic": config.cmd_topic}
    if config.robot_id >= 0:
        plan.append(NodeSpec("robot_node", f"robot_{config.robot_id}_host", parameters={
            **common, **topics, "robot_id": config.robot_id}))
    else:
        for index, (first, last) in enumerate(robot_ranges(config.n, config.robots_per_process)):
            plan.append(NodeSpec("fleet_node", f"fleet_{index}", parameters={
                **common, **topics, "first_robot": first, "last_robot": last, "link": config.link}))
    plan.append(NodeSpec("coordinator_node", "coordinator", parameters={
        **common, "k": config.k, "learn": config.learn, "decision_steps": config.decision_steps,
        "liveness_timeout": config.liveness_timeout, "checkpoint_out": config.checkpoint_out,
        "leader_pose_topic": config.pose_topic, "leader_pose_type": config.pose_type,
        "leader_cmd_topic": config.cmd_topic}))
    if config.record:
        plan.append(NodeSpec("recorder_node", "recorder", parameters={
            "use_sim_time": common["use_sim_time"], "n": config.n, "output": config.record, "link": config.link,
            "robots_per_process": config.robots_per_process}))
    if config.params_file:
        plan = [replace(spec, params_file=config.params_file) for spec in plan]
    return select_nodes(plan)


def select_nodes(plan: list[NodeSpec], only: tuple[str, ...] = ()) -> list[NodeSpec]:
    """Keep the executables in `only` (all if empty); the coordinator waits for the listeners that are kept.

    The coordinator's first step waits until its broadcast is matched with every kept fleet and recorder
    process (`expected_listeners`), so none of them misses the first steps; started alone (robots on
    their own machines), it waits for none.
    """
    kept = [spec for spec in plan if not only or spec.executable in only]
    listeners = sum(EXECUTABLES[spec.executable].listens for spec in kept)
    return [replace(s, parameters={**s.parameters, "expected_listeners": listeners})
            if s.executable == "coordinator_node" else s for s in kept]
