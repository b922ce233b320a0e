"""The package as a ROS user runs it: `ros2 launch` of every launch file on a sourced ROS 2.

Needs a ROS 2 install with `ros2 launch` and this package built and sourced (`colcon build`,
`source install/setup.bash`); CI does that with the minimal Jazzy in ../shared/ros2. Skipped,
saying why, elsewhere. Every launch gets its own ROS_DOMAIN_ID and keeps DDS on localhost; an
observer node in this process watches the graph. Ctrl-C is SIGINT to `ros2 launch` alone (its
stdin is no terminal, so it forwards SIGINT to every node, as a terminal's Ctrl-C would reach them).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("launch_ros", reason="no ROS 2 sourced (launch_ros not importable): source a ROS 2 "
                                         "install and a workspace with altmarl_ros built (colcon build)")
if shutil.which("ros2") is None:
    pytest.skip("no `ros2` command: source a ROS 2 install", allow_module_level=True)
try:
    from ament_index_python.packages import get_package_share_directory

    SHARE = Path(get_package_share_directory("altmarl_ros"))
except Exception as exc:  # PackageNotFoundError, or no AMENT_PREFIX_PATH
    pytest.skip(f"altmarl_ros is not built and sourced ({exc}): colcon build && source install/setup.bash",
                allow_module_level=True)

import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped, Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import Int32MultiArray, String  # noqa: E402

from altmarl_ros.nodes.common import load_world  # noqa: E402
from altmarl_ros.sim.config import zone_centres  # noqa: E402

STOP_SECONDS = 60.0  # a clean stop takes seconds; this only bounds a hang


@pytest.fixture(scope="module")
def policies(tiny_run):
    """Tiny zones policies for k = 2 and k = 4 (one alternation round, no certificate)."""
    return {k: tiny_run(k) for k in (2, 4)}


@pytest.fixture()
def domain(monkeypatch):
    domain_id = random.Random(os.getpid() + time.time_ns()).randint(1, 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Iron and later
    if os.environ.get("ROS_DISTRO") == "humble":
        monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    else:
        monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    return domain_id


class Launch:
    """One `ros2 launch` as a user starts it, with its log; stop() is Ctrl-C."""

    def __init__(self, launch_file: str, arguments: dict[str, object], cwd: Path, name: str = "launch") -> None:
        self.log_path = cwd / f"{name}.log"
        command = ["ros2", "launch", "altmarl_ros", launch_file, *(f"{k}:={v}" for k, v in arguments.items())]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = STOP_SECONDS) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ros2 launch did not exit within {timeout} s; log:\n{self.log()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait()

    def orphans(self) -> list[str]:
        """Processes of this launch's session still running after `ros2 launch` has exited."""
        left = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.getsid(int(proc.name)) == self.process.pid:
                    left.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
        return left

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Observer:
    """A node in this process that records what the graph publishes."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("_launch_test_observer", context=self.context)  # hidden: not asked by ros2 param
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.requests: list[list[int]] = []
        self.stats: list[dict] = []
        self.node.create_subscription(Int32MultiArray, "/altmarl/sample_request",
                                      lambda m: self.requests.append(list(m.data)), 100)
        self.node.create_subscription(String, "/altmarl/stats", lambda m: self.stats.append(json.loads(m.data)), 100)

    def spin_until(self, condition, timeout: float, what: str, launch: Launch | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                log = launch.log()[-4000:] if launch is not None else ""
                pytest.fail(f"timed out after {timeout} s waiting for {what}; launch log:\n{log}")
            if launch is not None and launch.process.poll() is not None:
                pytest.fail(f"ros2 launch exited ({launch.process.returncode}) while waiting for {what}:\n"
                            f"{launch.log()[-4000:]}")
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture()
def observer(domain):
    watcher = Observer()
    yield watcher
    watcher.close()


def ros2(*args: str, cwd: Path, timeout: float = 60.0) -> str:
    result = subprocess.run(["ros2", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return result.stdout + result.stderr


def assert_clean_stop(launch: Launch) -> None:
    code = launch.stop()
    log = launch.log()
    assert code == 0, f"ros2 launch exited with {code}:\n{log[-4000:]}"
    assert "process has died" not in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert launch.orphans() == []


def assert_k_per_step(observer: Observer, n: int, k: int) -> None:
    """The protocol: each step asks exactly k distinct live robots and accepts at most k replies."""
    assert observer.requests
    for request in observer.requests:
        ids = request[2:]  # [session, step, ids...]
        assert len(ids) == k and len(set(ids)) == k and all(0 <= i < n for i in ids), request
    last = observer.stats[-1]
    assert last["requests"] == k * last["steps"] and last["replies"] <= last["requests"] and last["rejected"] == 0
    assert last["late"] <= last["timeouts"]
    assert all(0 <= s["k_effective"] <= k for s in observer.stats)
    assert any(s["k_effective"] == k for s in observer.stats)


def test_sim_launch_with_every_sim_argument_and_ros_parameters(policies, observer, tmp_path):
    from tf2_msgs.msg import TFMessage

    frames = set()
    observer.node.create_subscription(TFMessage, "/tf", lambda m: frames.update(
        (t.header.frame_id, t.child_frame_id) for t in m.transforms), 10)
    shutil.copy(policies[4] / "world.yaml", tmp_path / "fast_world.yaml")  # a relative path, from the cwd
    (tmp_path / "params.yaml").write_text("coordinator:\n  ros__parameters:\n    reply_timeout: 1.25\n")
    arguments = {"n": 12, "k": 4, "policy": policies[4], "backend": "kinematic", "robots_per_process": 5,
                 "learn": "true", "record": "rec", "checkpoint_out": "online", "world_config": "fast_world.yaml",
                 "params_file": "params.yaml", "speedup": 4.0, "seed": 3, "zones": 5, "use_sim_time": "true",
                 "rviz": "false"}
    launch = Launch("sim.launch.py", arguments, tmp_path)
    try:
        observer.spin_until(lambda: len(observer.stats) >= 4, 90, "4 decision steps", launch)
        assert ("world", "leader/base_link") in frames  # /tf from the sim (tf2_msgs exists on a ROS 2 install)
        nodes = set(ros2("node", "list", cwd=tmp_path).split())
        assert {"/sim", "/fleet_0", "/fleet_1", "/fleet_2", "/coordinator", "/recorder"} <= nodes, nodes
        assert not any("agent" in name for name in nodes)  # the fleets' lean robot nodes are hidden
        # every visible node answers parameter requests: `ros2 param list` waits on no one
        services = ros2("service", "list", cwd=tmp_path).split()
        without = [name for name in nodes if f"{name}/list_parameters" not in services]
        assert without == [], (without, services)
        listing = ros2("param", "list", cwd=tmp_path)
        assert "timed out" not in listing and "/coordinator:" in listing and "epsilon" in listing
        assert "1.25" in ros2("param", "get", "/coordinator", "reply_timeout", cwd=tmp_path)  # params_file
        assert "successful" in ros2("param", "set", "/coordinator", "epsilon", "0.3", cwd=tmp_path)
        assert "0.3" in ros2("param", "get", "/coordinator", "epsilon", cwd=tmp_path)
        refused = ros2("param", "set", "/coordinator", "k", "7", cwd=tmp_path)
        assert "successful" not in refused.lower() and "read-only" in refused.lower(), refused
        assert "failed" in ros2("param", "set", "/coordinator", "epsilon", "2.0", cwd=tmp_path).lower()
        assert "4" in ros2("param", "get", "/coordinator", "k", cwd=tmp_path)
        observer.spin_until(lambda: len(observer.stats) >= 6, 60, "6 decision steps", launch)
    finally:
        assert_clean_stop(launch)
    assert_k_per_step(observer, 12, 4)
    assert (tmp_path / "rec" / "run.mcap").stat().st_size > 0  # record:=rec, relative to the caller
    assert (tmp_path / "online" / "checkpoint.npz").is_file()  # learn:=true saves on Ctrl-C


def test_pybullet_backend_under_ros2_launch(policies, observer, tmp_path):
    shutil.copy(policies[2] / "world.yaml", tmp_path / "fast_world.yaml")
    launch = Launch("sim.launch.py", {"n": 6, "k": 2, "policy": policies[2], "backend": "pybullet",
                                      "world_config": "fast_world.yaml"}, tmp_path)
    try:
        observer.spin_until(lambda: len(observer.stats) >= 2, 120, "2 decision steps", launch)
    finally:
        assert_clean_stop(launch)
    assert "pybullet world with 6 robots" in launch.log()
    assert_k_per_step(observer, 6, 2)


class MotionCapture:
    """A motion-capture system for the test: PoseStamped of every robot and the leader at 20 Hz."""

    def __init__(self, observer: Observer, n: int, topic: str, message: type) -> None:
        world = load_world(str(SHARE / "config" / "world.yaml"), 5)
        centres = zone_centres(world)
        self.message = message
        self.poses = {f"/robot_{i}/{topic}": (*centres[i % len(centres)], 0.0) for i in range(n)}
        self.poses[f"/leader/{topic}"] = (*centres[0], 0.0)
        self.publishers = {name: observer.node.create_publisher(message, name, 10) for name in self.poses}
        self.commands: dict[str, list[tuple[float, float]]] = {}
        for name in self.poses:
            cmd = name.rsplit("/", 1)[0] + "/cmd_vel"
            self.commands[cmd] = []
            observer.node.create_subscription(
                Twist, cmd, lambda m, cmd=cmd: self.commands[cmd].append((m.linear.x, m.angular.z)), 10)
        observer.node.create_timer(0.05, self.publish)
        self.clock = observer.node.get_clock()

    def publish(self) -> None:
        now = self.clock.now().to_msg()
        for name, (x, y, _) in self.poses.items():
            msg = self.message()
            msg.header.stamp, msg.header.frame_id = now, "world"
            pose = msg.pose if isinstance(msg, PoseStamped) else msg.pose.pose
            pose.position.x, pose.position.y, pose.orientation.w = float(x), float(y), 1.0
            self.publishers[name].publish(msg)

    def moving_robots(self) -> int:
        return sum(any(abs(v) > 1e-6 or abs(w) > 1e-6 for v, w in cmds)
                   for name, cmds in self.commands.items() if name.startswith("/robot_"))


def test_hardware_launch_with_motion_capture_from_another_directory(policies, observer, tmp_path):
    mocap = MotionCapture(observer, 6, "pose", PoseStamped)
    launch = Launch("hardware.launch.py", {"n": 6, "k": 2, "policy": policies[2], "world_config": "config/world.yaml",
                                           "pose_topic": "pose", "pose_type": "pose_stamped",
                                           "cmd_topic": "cmd_vel"}, tmp_path)
    try:
        observer.spin_until(lambda: len(observer.stats) >= 2 and mocap.moving_robots() > 0, 90,
                            "2 decision steps and a robot driving", launch)
    finally:
        assert_clean_stop(launch)
    assert "/sim" not in launch.log() and "sim_node" not in launch.log()
    assert_k_per_step(observer, 6, 2)
    assert mocap.commands["/leader/cmd_vel"]  # the coordinator steers the leader on its cmd_vel


def test_base_station_and_one_robot_per_computer_on_wall_time(policies, observer, tmp_path):
    mocap = MotionCapture(observer, 3, "odom", Odometry)
    common = {"n": 3, "k": 2, "policy": policies[2]}
    launches = [Launch("coordinator.launch.py", common, tmp_path, "base")]
    launches += [Launch("robot.launch.py", {**common, "robot_id": i}, tmp_path, f"robot_{i}") for i in range(3)]
    try:
        observer.spin_until(lambda: len(observer.stats) >= 1 and mocap.moving_robots() > 0, 90,
                            "a decision step on wall time (no /clock anywhere)", launches[0])
        nodes = set(ros2("node", "list", cwd=tmp_path).split())
        assert {"/coordinator", "/robot_0_host", "/robot_0/robot_0_agent", "/robot_2_host"} <= nodes, nodes
    finally:
        for launch in launches:
            assert_clean_stop(launch)
    assert_k_per_step(observer, 3, 2)


def rviz_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("launch_file, changes, message", [
    pytest.param("sim.launch.py", {"rviz": "true"}, "rviz:=true needs RViz 2",
                 marks=pytest.mark.skipif(rviz_installed(), reason="rviz2 is installed here: it would start")),
    ("sim.launch.py", {"k": 3}, "the policy was trained for k=2, but k=3 was asked for"),
    ("sim.launch.py", {"world_config": "config/none.yaml"}, "world_config file"),
    ("robot.launch.py", {}, "give robot_id:="),
    ("sim.launch.py", {"n": "many"}, "n:='many' is not a valid int"),
])
def test_a_bad_launch_says_why_in_one_line_and_starts_nothing(policies, domain, tmp_path, launch_file, changes,
                                                              message):
    launch = Launch(launch_file, {"n": 6, "k": 2, "policy": policies[2], **changes}, tmp_path)
    code = launch.wait()
    log = launch.log()
    assert code != 0 and message in log, log
    assert "process started" not in log and launch.orphans() == []


def test_the_rviz_config_is_installed_with_the_world_frame():
    import yaml

    rviz = yaml.safe_load((SHARE / "config" / "altmarl.rviz").read_text())
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "world"
    assert np.all([(SHARE / "launch" / name).is_file() for name in
                   ("sim.launch.py", "hardware.launch.py", "coordinator.launch.py", "robot.launch.py")])


ENROLLED_LISTENER = """
import json, sys, time
import rclpy
from std_msgs.msg import Int32MultiArray, String
out, seconds, enclave = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rclpy.init(args=["--ros-args", "--enclave", enclave])
node = rclpy.create_node("_enrolled_listener")
seen = {"stats": [], "requests": []}
node.create_subscription(String, "/altmarl/stats", lambda m: seen["stats"].append(json.loads(m.data)), 100)
node.create_subscription(Int32MultiArray, "/altmarl/sample_request", lambda m: seen["requests"].append(list(m.data)),
                         100)
end = time.monotonic() + seconds
while time.monotonic() < end and len(seen["stats"]) < 3:
    rclpy.spin_once(node, timeout_sec=0.1)
json.dump(seen, open(out, "w"))
"""


def test_security_launch_argument_shuts_out_an_unenrolled_observer(policies, observer, tmp_path):
    """security:=<keystore>: an enrolled listener (its own process: security is per process) sees the
    steps; this process's observer, with no enclave, sees nothing."""
    pytest.importorskip("sros2", reason="no sros2 (ROS 2 security tools) in this ROS 2")
    import sys

    from altmarl_ros.security import main as keystore_main
    from altmarl_ros.security import security_env

    keystore = tmp_path / "keys"
    assert keystore_main([str(keystore), "--n", "6", "--robots-per-process", "6"]) == 0
    launch = Launch("sim.launch.py", {"n": 6, "k": 2, "policy": policies[2], "security": "keys"}, tmp_path)
    report = tmp_path / "enrolled.json"
    listener = subprocess.Popen([sys.executable, "-c", ENROLLED_LISTENER, str(report), "90", "/altmarl/monitor"],
                                env={**os.environ, **security_env(str(keystore))})
    try:
        deadline = time.monotonic() + 100
        while listener.poll() is None and time.monotonic() < deadline:
            observer.executor.spin_once(timeout_sec=0.1)
    finally:
        listener.kill()
        assert_clean_stop(launch)
    seen = json.loads(report.read_text())
    assert len(seen["stats"]) >= 3, launch.log()[-3000:]  # enrolled: the secured graph works
    assert_k_per_step(SimpleNamespace(**seen), 6, 2)
    assert observer.stats == [] and observer.requests == []  # no enclave: this process received nothing
