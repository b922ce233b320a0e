"""The node graph on real rclpy, as processes on loopback: sampling, faults, restart, bad input.

n = 20 robots, k = 4, kinematic world at 4x real time. Each test uses its own
ROS_DOMAIN_ID and keeps DDS on localhost, so runs do not see each other.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

rclpy = pytest.importorskip("rclpy")

from altmarl_ros import runs  # noqa: E402
from altmarl_ros.bringup.launch_plan import LaunchConfig, LaunchError, build_launch_plan  # noqa: E402
from altmarl_ros.bringup.system import RunObserver, run_system, stop_grace  # noqa: E402
from altmarl_ros.marl.checkpoint import load_checkpoint  # noqa: E402
from altmarl_ros.marl.errors import CheckpointError  # noqa: E402
from altmarl_ros.marl.evaluation import rollout  # noqa: E402
from altmarl_ros.tasks import make_game  # noqa: E402

WORLD = """world:
  zone_radius: 1.3
  ring_radius: 2.35
  arena_half_size: 4.2
  decision_period: 6.0
"""


@pytest.fixture(scope="module")
def policy(tiny_run):
    """conftest's tiny k = 4 run: the paper's start alone, as these tests were written for. With the default
    starts the pair sends all 20 robots to one zone of the small test world; in one CI run (Jazzy, at 4x)
    only 71 % of decisions were then honoured against the 90 % asserted below (see README, "Policy in
    physics"). Returns the run directory, this module's world and the run as loaded."""
    out = tiny_run(4)
    world = out / "world.yaml"
    world.write_text(WORLD)
    return out, world, runs.load(out)


@pytest.fixture(autouse=True)
def private_dds(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # Kilted and Jazzy
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")  # Humble


def _config(trained, **changes) -> LaunchConfig:
    out, world, _ = trained
    values = dict(n=20, k=4, policy=str(out), world_config=str(world), speedup=4.0, decision_steps=32,
                  robots_per_process=10, seed=1)
    values.update(changes)
    return LaunchConfig(**values)


def test_coordinator_gets_exactly_k_uniform_replies_and_robots_follow_their_policy(policy, tmp_path):
    out, world, result = policy
    record = tmp_path / "recording"
    params = str(Path(__file__).resolve().parents[1] / "config" / "altmarl.yaml")
    run = run_system(_config(policy, record=str(record), params_file=params), tmp_path / "logs", timeout=150)
    log, summary = run.log, run.summary
    assert not run.died, f"processes died: {run.died}"
    assert summary.steps >= 30
    stats = log.last_stats
    # the protocol, whatever the machine's load: each step asks min(k, alive) distinct robots, and nothing
    # but the replies of the asked robots is accepted
    assert all(record.asked == min(4, record.alive) for record in log.steps)
    assert all(len(set(ids)) == len(ids) <= 4 for ids in log.requested.values())
    unseen = stats["steps"] - len(log.steps)  # the monitor may join a step or two late
    assert 0 <= stats["requests"] - sum(record.asked for record in log.steps) <= 4 * unseen
    assert stats["rejected"] == 0 and stats["late"] <= stats["timeouts"]  # late replies are not accepted
    assert stats["replies"] + stats["timeouts"] == stats["requests"] and stats["malformed"] == 0
    # the passive monitor joins the graph late; from step 3 on it sees every sample message: at most k
    assert all(log.samples_per_step[s] <= 4 for s in log.requested if s >= 3)
    # sampled ids uniform over the robots, on the steps where all 20 were alive: chi-square at level 0.001
    full = {record.step for record in log.steps if record.alive == 20}
    asked = np.concatenate([ids for step, ids in log.requested.items() if step in full])
    assert len(full) >= 20 and chisquare(np.bincount(asked, minlength=20)).pvalue > 0.001
    # what depends on the machine keeping up (replies within reply_timeout, robots reaching their zones
    # within a decision period) is asserted where the run kept the speedup it was given (4x)
    if log.real_time_factor() >= 0.9 * 4.0:
        assert stats["timeouts"] == 0 and all(step.k_effective == 4 for step in log.steps)
        assert all(log.samples_per_step[s] == 4 for s in log.requested if s >= 3)
        # robots end in the zones their policy (and the task model) chose: stated bound 90 % of decisions
        assert summary.decisions_honoured >= 0.9
    else:
        print(f"real-time factor {log.real_time_factor():.2f} < 3.6: timing-dependent checks not asserted")
    # return: within the central 99.8 % of the tabular model's episodes of the same length and n
    game = make_game("zones", {"n": 20})
    tabular = rollout(game, result.global_policy, result.local_policy, np.random.default_rng(0), 2000,
                      horizon=summary.steps).discounted_return
    low, high = np.quantile(tabular, [0.001, 0.999])
    assert low <= summary.discounted_return <= high

    # the recording, read back with an independent reader (rosbags, through the bag's metadata.yaml)
    from rosbags.highlevel import AnyReader

    with AnyReader([record]) as reader:
        counts = Counter(connection.topic for connection, _, _ in reader.messages())
        samples = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                   if c.topic == "/altmarl/samples"]
    assert all(len(m.data) == 6 and 0 <= m.data[3] < 5 for m in samples)  # [session, step, id, zone, x, y]
    steps = 32  # decision_steps: the coordinator's last broadcast may reach the recorder but not the monitor
    # the recorder may join a step late and is stopped as soon as the coordinator exits: 2 steps of slack
    assert steps - 2 <= counts["/altmarl/sample_request"] <= steps and steps - 2 <= counts["/altmarl/global"] <= steps
    # every accepted reply was a sample message on the wire (the recorder may miss the 2 steps of slack
    # above); under load a timed-out robot may answer late or not at all, so this holds whatever the load
    assert stats["replies"] - 4 * 2 <= counts["/altmarl/samples"] <= 4 * steps
    assert counts["/clock"] > 10 * steps and counts["/robot_0/odom"] > 5 * steps and "/leader/cmd_vel" in counts


def test_a_killed_robot_process_stops_being_sampled_and_the_run_goes_on(policy, tmp_path):
    killed_at = {}

    class KillFleet(RunObserver):
        seen = 0

        def on_stats(self, record, stats, supervisor) -> bool:
            self.seen += 1
            if self.seen == 6 and not killed_at:
                supervisor.kill("fleet_1")  # robots 10..19
                killed_at["step"] = self.seen
            return False

    # 15 s of silence (2.5 decision periods) before a robot is presumed dead, so the steps right
    # after the kill still ask dead robots and show the dropped replies
    config = _config(policy, decision_steps=24, liveness_timeout=15.0)
    run = run_system(config, tmp_path / "logs", timeout=150, observer=KillFleet())
    log = run.log
    assert run.died == ["fleet_1"]
    assert run.summary.steps >= 22  # the coordinator kept stepping
    dead = set(log.last_stats["dead"])
    assert dead == set(range(10, 20))
    # bounded: liveness_timeout (15 s) + one decision period (6 s) = 3.5 decision periods after the kill
    late = [s for s in log.requested if s > killed_at["step"] + 4]
    assert late and all(not set(log.requested[s]) & dead for s in late)
    # dropped replies lowered k_effective instead of stalling the step
    assert any(step.k_effective < 4 for step in log.steps if step.step > killed_at["step"])


def test_a_restarted_learning_coordinator_resumes_its_q_table(policy, tmp_path):
    saved = tmp_path / "online"
    first = run_system(_config(policy, learn=True, decision_steps=8, checkpoint_out=str(saved)),
                       tmp_path / "logs1", timeout=120)
    assert not first.died
    q1 = load_checkpoint(saved).array("global_q")
    visits1 = load_checkpoint(saved).array("online_visits")
    assert visits1.sum() > 0
    second = run_system(_config(policy, learn=True, decision_steps=8, checkpoint_out=str(saved), seed=2),
                        tmp_path / "logs2", timeout=120)
    assert not second.died
    assert "resuming the Q table" in (tmp_path / "logs2" / "coordinator.log").read_text()
    q2 = load_checkpoint(saved).array("global_q")
    visits2 = load_checkpoint(saved).array("online_visits")
    assert visits2.sum() > visits1.sum()  # counts carried over and grew
    untouched = visits2 == visits1
    np.testing.assert_array_equal(q2[untouched], q1[untouched])  # started from the saved table, not the policy


def test_robots_follow_a_restarted_coordinator_from_its_first_step(policy, tmp_path):
    """A coordinator killed and restarted (learning, same checkpoint_out) starts a new session at step 1:
    the robots decide on its steps at once, instead of ignoring them for as many steps as the old run lasted."""
    restarted = []

    class CrashAndRestart(RunObserver):
        seen = 0

        def on_stats(self, record, stats, supervisor) -> bool:
            self.seen += 1
            if self.seen == 5 and not restarted:
                restarted.append(self.seen)
                supervisor.restart("coordinator")
            return False

    config = _config(policy, decision_steps=8, learn=True, checkpoint_out=str(tmp_path / "online"))
    run = run_system(config, tmp_path / "logs", timeout=150, observer=CrashAndRestart())
    assert restarted and not run.died
    steps = [record.step for record in run.log.steps]
    # the step count went back (a new session) and the second session ran to its last step (the monitor may
    # miss a session's first step while DDS matches the restarted coordinator)
    assert any(b < a for a, b in zip(steps, steps[1:], strict=False)) and steps[-1] == 8 and len(steps) >= 10, steps
    # steps 3 and 4 happened in both sessions, and every robot decided on each of them both times
    assert [run.log.decisions_per_step[step] for step in (3, 4)] == [2 * 20, 2 * 20], run.log.decisions_per_step
    assert (tmp_path / "online" / "checkpoint.npz").is_file()  # the restarted run saved its table at the end


@pytest.mark.parametrize("changes, error, message", [
    ({"k": 30}, LaunchError, "k=30 exceeds n=20"),
    ({"backend": "gazebo"}, LaunchError, "unknown backend"),
    ({"policy": "/nonexistent/policy.npz"}, LaunchError, "does not exist"),
    ({"zones": 6}, CheckpointError, "policy for 5 zones"),
])
def test_bad_input_fails_before_anything_starts(policy, tmp_path, changes, error, message):
    with pytest.raises(error, match=message):
        build_launch_plan(_config(policy, **changes))


def test_launch_plan_splits_robots_into_fleet_processes(policy):
    plan = build_launch_plan(_config(policy, n=23, robots_per_process=10, record="/tmp/rec"))
    names = [spec.name for spec in plan]
    assert names == ["sim", "fleet_0", "fleet_1", "fleet_2", "coordinator", "recorder"]
    ranges = [(s.parameters["first_robot"], s.parameters["last_robot"]) for s in plan if s.executable == "fleet_node"]
    assert ranges == [(0, 8), (8, 16), (16, 23)]
    assert "fleet:__node:=fleet_1" in plan[2].ros_args()
    hardware = build_launch_plan(_config(policy, hardware=True))
    assert "sim" not in [spec.name for spec in hardware]
    assert all(not spec.parameters.get("use_sim_time", False) for spec in hardware)


def test_env_is_private(private_dds):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


BIG_WORLD = """world:
  robot_spacing: 0.45
  zone_radius: 2.8
  ring_radius: 5.01
  arena_half_size: 8.31
"""


def test_a_fleet_host_forwards_requests_and_gates_commands_on_pose_stamps(policy, tmp_path):
    """In one process, no graph: the host answers exactly the asked robots it hosts, once each; a
    robot commands once per control period of its pose stamps; the single-robot executable keeps a full node."""
    from std_msgs.msg import Int32MultiArray

    from altmarl_ros.nodes import robot_node

    out, world, _ = policy
    rclpy.init(args=["fleet", "--ros-args", "-p", f"policy:={out}", "-p", f"world_config:={world}", "-p", "n:=20",
                     "-p", "first_robot:=5", "-p", "last_robot:=10"])
    try:
        nodes = robot_node.make_fleet()
        host, robots = nodes[0], nodes[1:]
        assert [r.robot_id for r in robots] == [5, 6, 7, 8, 9]
        # lean robot nodes: pose in, cmd and decision out (+ parameter events); no services, no /rosout,
        # no QoS event handlers: one entry each in the executor's wait set
        assert all(not list(r.services) and len(list(r.subscriptions)) == 1 and not list(r.waitables)
                   for r in robots)
        samples, cmds = [], []
        host.sample_pub.publish = samples.append
        for r in robots:
            r.cmd_pub.publish = lambda msg, r=r: cmds.append(r.robot_id)
        for r in robots[:-1]:  # robot 9 has no pose yet: it cannot answer
            r._on_pose(0.0, 0.0, 0.0, 10.0)
        host._on_request(Int32MultiArray(data=[7, 3, 1, 6, 9, 6, 8, 15]))  # [session, step, ids...]
        assert sorted(int(m.data[2]) for m in samples) == [6, 8]
        assert all(m.data[0] == 7 and m.data[1] == 3 for m in samples)
        samples.clear()
        host._on_request(Int32MultiArray(data=[7, 4, *range(21)]))  # more ids than robots: dropped unread
        host._on_request(Int32MultiArray(data=[7, 4, 6, 99]))  # an id outside [0, n): dropped
        assert samples == [] and host.malformed == 2
        # broadcasts: each new step of the followed session once; a forged step far ahead costs one message
        decisions = []
        for r in robots:
            r.decision_pub.publish = lambda msg, r=r: decisions.append((r.robot_id, msg.data[0]))
        for data in ([7, 1, 0, 0], [7, 1, 0, 0], [7, 2**31 - 1, 0, 0], [7, 2, 0, 0], [9, 1, 0, 0], [9, 1, 0, 9]):
            host._on_global(Int32MultiArray(data=data))
        steps = [step for robot, step in decisions if robot == 5]
        assert steps == [1, 2**31 - 1, 2, 1]  # the duplicate and the bad action (9) were dropped
        assert host.follower.dropped == 1 and host.malformed == 3 and host.follower.session == 9
        cmds.clear()
        assert robots[0].control_dt == pytest.approx(0.1)
        sent = []
        for stamp in (10.05, 10.1, 10.15, 10.199, 10.25, 10.3):
            robots[0]._on_pose(0.0, 0.0, 0.0, stamp)
            sent += [stamp] * len(cmds)
            cmds.clear()
        assert sent == [10.1, 10.25]  # at most once per 0.1 s of pose stamps (10.199 is 0.099 s after 10.1)
        robots[0]._on_pose(0.0, 0.0, 0.0, 1.0)  # stamps went back (a restarted sim): command at once
        assert cmds == [5]
        for node in nodes:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_a_fleet_of_125_robots_stops_cleanly_on_sigint(policy, tmp_path):
    """Destroying a fleet's nodes is quick (lean robot nodes), so SIGINT ends it with code 0 well
    within the supervisor's grace, without SIGTERM or SIGKILL."""
    out, _, _ = policy
    world = tmp_path / "world.yaml"
    world.write_text(BIG_WORLD)
    log = tmp_path / "fleet.log"
    command = [sys.executable, "-m", "altmarl_ros.nodes.fleet_node", "--ros-args", "-p", f"policy:={out}",
               "-p", f"world_config:={world}", "-p", "n:=125", "-p", "use_sim_time:=true"]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "hosting robots 0..124" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        # within the grace after which the supervisor would send SIGTERM (the protocol's bound, not a speed)
        code = process.wait(timeout=stop_grace(LaunchConfig(n=125, robots_per_process=125)))
        assert code == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_robot_stops_by_itself_when_its_pose_or_its_coordinator_falls_silent(policy):
    """On hardware a base keeps its last command: a robot publishes zero velocity instead, and says so once."""
    from std_msgs.msg import Int32MultiArray

    from altmarl_ros.nodes import robot_node

    out, world, _ = policy
    rclpy.init(args=["robot", "--ros-args", "-p", f"policy:={out}", "-p", f"world_config:={world}", "-p", "n:=20",
                     "-p", "robot_id:=4", "-p", "pose_timeout:=0.5", "-p", "coordinator_timeout:=2.0"])
    try:
        host, robot = robot_node.make_robot()
        cmds = []
        robot.cmd_pub.publish = lambda msg: cmds.append((msg.linear.x, msg.angular.z))
        robot._on_pose(-3.0, 0.0, 0.0, 1.0)
        host._on_global(Int32MultiArray(data=[5, 1, 2, 2]))  # a destination away from here: it drives
        robot._on_pose(-3.0, 0.0, 0.0, 1.2)
        assert cmds and cmds[-1] != (0.0, 0.0)
        cmds.clear()
        host._watch()
        assert cmds == []  # pose and coordinator fresh: the watchdog stays quiet
        robot.last_pose_time -= 1.0  # the pose source is silent for longer than pose_timeout
        host._watch()
        host._watch()
        assert cmds == [(0.0, 0.0), (0.0, 0.0)] and robot.said_pose_silent
        cmds.clear()
        host.last_coordinator -= 3.0  # the coordinator is silent for longer than coordinator_timeout
        robot._on_pose(-3.0, 0.0, 0.0, 2.0)
        assert cmds == [(0.0, 0.0)]  # its pose is back, but without a coordinator it stands still
        host._watch()
        assert host.said_coordinator_silent and not robot.said_pose_silent
        cmds.clear()
        host._on_global(Int32MultiArray(data=[5, 2, 2, 2]))  # it is back: the robot drives again
        robot._on_pose(-3.0, 0.0, 0.0, 2.5)
        host._watch()
        assert cmds[0] != (0.0, 0.0) and not host.said_coordinator_silent
        for node in (host, robot):
            node.destroy_node()
    finally:
        rclpy.shutdown()


def _pose_array(xy_yaw, stamp: float) -> bytes:
    """Serialized by rclpy itself, as a batched fleet receives it (a raw subscription)."""
    from geometry_msgs.msg import Pose, PoseArray
    from rclpy.serialization import serialize_message

    from altmarl_ros.nodes import topics

    msg = PoseArray()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
    msg.header.frame_id = topics.WORLD_FRAME
    for x, y, yaw in xy_yaw:
        pose = Pose()
        pose.position.x, pose.position.y = float(x), float(y)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = topics.quaternion_from_yaw(yaw)
        msg.poses.append(pose)
    return bytes(serialize_message(msg))


def test_the_batched_links_pose_array_is_what_rclpy_serializes_and_hostile_ones_are_refused():
    from altmarl_ros.nodes import topics

    poses = np.random.default_rng(0).uniform(-3.0, 3.0, (7, 3))
    data = _pose_array(poses, 12.25)
    assert topics.pose_array_cdr(12.25, topics.WORLD_FRAME, poses) == data  # byte for byte
    stamp, back = topics.parse_pose_array_cdr(data, 7)
    assert stamp == 12.25 and np.allclose(back, poses, rtol=0, atol=1e-12)
    cases = ((data, "7 poses; expected 8"), (data[:-8], "bytes; expected"), (b"\x00\x00" + data[2:], "little"),
             (_pose_array([(np.nan, 0.0, 0.0)] * 7, 1.0), "NaN"), (_pose_array([(2e6, 0, 0)] * 7, 1.0), "m from"))
    for bad, why in cases:
        with pytest.raises(topics.MessageError, match=why):
            topics.parse_pose_array_cdr(bad, 8 if why.startswith("7 poses") else 7)


def test_a_batched_fleet_answers_exactly_the_robots_asked_and_stops_without_poses(policy):
    """link:=batched: one pose array in, one command array out; samples only for the asked robots it hosts."""
    from std_msgs.msg import Int32MultiArray

    from altmarl_ros.nodes import robot_node

    out, world, _ = policy
    rclpy.init(args=["fleet", "--ros-args", "-p", f"policy:={out}", "-p", f"world_config:={world}", "-p", "n:=20",
                     "-p", "first_robot:=10", "-p", "last_robot:=20", "-p", "link:=batched",
                     "-p", "pose_timeout:=0.5"])
    try:
        nodes = robot_node.make_fleet()
        assert len(nodes) == 1  # no robot nodes on the batched link
        host = nodes[0]
        samples, cmds, decisions = [], [], []
        host.sample_pub.publish = lambda msg: samples.append(list(msg.data))
        host.batch_cmd_pub.publish = lambda msg: cmds.append(list(msg.data))
        host.batch_decision_pub.publish = lambda msg: decisions.append(list(msg.data))
        poses = [(-3.0 + 0.3 * i, 0.1 * i, 0.0) for i in range(10)]
        host._on_batch_poses(_pose_array(poses[:9], 1.0))  # one pose short: dropped, counted
        assert host.malformed == 1 and cmds == [] and not host.batch.has_pose
        host._on_batch_poses(_pose_array(poses, 1.0))
        assert cmds == [[0.0] * 20]  # poses, but no broadcast yet: every robot stands still
        host._on_global(Int32MultiArray(data=[7, 1, 2, 2]))
        assert decisions and decisions[-1][0] == 1 and len(decisions[-1]) == 1 + 4 * 10
        assert sorted(decisions[-1][1::4]) == list(range(10, 20))
        host._on_batch_poses(_pose_array(poses, 1.05))  # within the control period: no new command
        host._on_batch_poses(_pose_array(poses, 1.1))
        assert len(cmds) == 2 and any(v != 0.0 for v in cmds[-1])
        host._on_request(Int32MultiArray(data=[7, 1, 3, 12, 19, 12, 4, 17]))
        assert [int(sample[2]) for sample in samples] == [12, 19, 17]  # hosted and asked, once each, in order
        assert all(sample[:2] == [7.0, 1.0] for sample in samples)
        cmds.clear()
        host.last_batch_pose -= 1.0  # the sim falls silent for longer than pose_timeout
        host._watch()
        assert cmds == [[0.0] * 20] and host.said_batch_silent
        host.destroy_node()
    finally:
        rclpy.shutdown()


def _step_rewards(run, result) -> tuple[np.ndarray, np.ndarray]:
    """Per decision step: the zones task's reward of the population the monitor saw, and whether a_g was the mode."""
    game = result.game.with_n(20)
    expected_local = game.expected_local_reward(result.local_policy)
    rewards, hits = [], []
    for record in run.log.steps:
        if record.population_zones is None:
            continue
        g, a, zones = record.global_state, record.global_action, record.population_zones
        rewards.append(game.global_reward[g, a] + expected_local[zones, g].mean())
        hits.append(a == np.argmax(np.bincount(zones, minlength=game.num_local_states)))
    return np.array(rewards), np.array(hits, dtype=float)


def _variance_of_mean(series: np.ndarray) -> float:
    """Var of the mean of a stationary AR(1)-like series: s^2 / n x (1 + rho) / (1 - rho), rho the lag-1
    autocorrelation clipped to [0, 0.9] (the zones of consecutive steps are correlated)."""
    if len(series) < 2:
        return 0.0
    before, after = series[:-1], series[1:]
    rho = 0.0
    if len(series) >= 3 and before.std() > 0 and after.std() > 0:
        rho = float(np.clip(np.corrcoef(before, after)[0, 1], 0.0, 0.9))
    return series.var(ddof=1) / len(series) * (1 + rho) / (1 - rho)


def test_one_policy_behaves_the_same_on_the_per_robot_and_the_batched_link(policy, tmp_path):
    """Same policy, n and seed on both links. Stated bound: the mean per-step reward and the mode accuracy
    differ by less than 3 standard errors of the difference (two independent runs, each mean's variance
    corrected for lag-1 autocorrelation; about one false alarm in 370 runs if both links draw from one
    distribution and the AR(1) correction holds)."""
    out, world, result = policy
    runs = {link: run_system(_config(policy, decision_steps=24, link=link), tmp_path / link, timeout=150)
            for link in ("per_robot", "batched")}
    for link, run in runs.items():
        assert not run.died, (link, run.died)
        stats = run.log.last_stats
        assert stats["steps"] == 24 and all(record.asked == min(4, record.alive) for record in run.log.steps)
        assert stats["rejected"] == 0 and stats["late"] <= stats["timeouts"]  # only asked robots answered
        assert stats["replies"] + stats["timeouts"] == stats["requests"] and stats["malformed"] == 0
        assert all(count <= 4 for count in run.log.samples_per_step.values())
    (reward_a, hit_a), (reward_b, hit_b) = (_step_rewards(run, result) for run in runs.values())
    assert len(reward_a) >= 20 and len(reward_b) >= 20
    for a, b, what in ((reward_a, reward_b, "per-step reward"), (hit_a, hit_b, "mode accuracy")):
        error = np.sqrt(_variance_of_mean(a) + _variance_of_mean(b))
        assert abs(a.mean() - b.mean()) <= 3 * error or a.mean() == b.mean(), (what, a.mean(), b.mean(), error)
    summaries = {link: (run.summary.discounted_return, run.summary.mode_accuracy) for link, run in runs.items()}
    print(f"return, mode accuracy per link: {summaries}")


FLOODER = """
import random, sys, time
import rclpy
from std_msgs.msg import Int32, Int32MultiArray
rate, seconds, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rclpy.init()
node = rclpy.create_node("flooder")
beat = node.create_publisher(Int32, "/altmarl/heartbeat", 1000)
junk = node.create_publisher(Int32MultiArray, "/altmarl/global", 100)
rng = random.Random(0)
end = time.monotonic() + seconds
sent = 0
while time.monotonic() < end:
    burst_end = time.monotonic() + 0.01
    for _ in range(int(rate * 0.01)):
        beat.publish(Int32(data=rng.randrange(-n, 2 * n)))  # a third of the ids are no robot's
        sent += 1
    junk.publish(Int32MultiArray(data=[rng.randrange(1, 9)] * rng.randrange(0, 9)))  # malformed broadcasts
    time.sleep(max(0.0, burst_end - time.monotonic()))
print(sent)
"""


def test_a_heartbeat_flood_and_malformed_broadcasts_do_not_push_real_robots_out(policy, tmp_path):
    """A peer floods /altmarl/heartbeat (1,000 messages/s, 100 times the robots' own rate) and publishes
    malformed broadcasts: real robots stay sampled, the junk is counted and dropped, nothing dies.

    Real time (speedup 1): the flooder takes most of a core of this 2-core machine, and liveness is
    6 s of the sim's clock; at 4x a fleet process starved for 1.5 s would be presumed dead by the load
    alone, whatever the flood does to the queues."""
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER, "1000", "90", "20"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        run = run_system(_config(policy, decision_steps=8, speedup=1.0), tmp_path / "logs", timeout=150)
    finally:
        flooder.kill()
        flooder.wait()
    assert not run.died
    log = run.log
    assert log.last_stats["steps"] == 8 and log.last_stats["malformed"] > 0  # the flood did arrive
    assert all(record.asked == min(4, record.alive) for record in log.steps)
    hosts = "\n".join(path.read_text(errors="replace") for path in (tmp_path / "logs").glob("fleet_*.log"))
    assert "dropped a broadcast" in hosts and "Traceback" not in hosts
    if log.real_time_factor() >= 0.9:  # liveness is timing: asserted where the run kept its speed
        assert all(record.alive == 20 for record in log.steps[1:]), [r.alive for r in log.steps]
    else:
        print(f"real-time factor {log.real_time_factor():.2f} < 0.9: liveness under the flood not asserted "
              f"(alive per step {[r.alive for r in log.steps]})")


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs that the test can fill: a real full disk (ENOSPC), removed afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN) to make a full disk")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_learning_coordinator_on_a_full_disk_logs_keeps_stepping_and_saves_once_there_is_room(policy, tiny_disk):
    from altmarl_ros.nodes.coordinator_node import CoordinatorNode

    out, world, _ = policy
    target = tiny_disk / "online"
    rclpy.init(args=["coordinator", "--ros-args", "-p", f"policy:={out}", "-p", f"world_config:={world}",
                     "-p", "n:=20", "-p", "k:=4", "-p", "learn:=true", "-p", f"checkpoint_out:={target}"])
    try:
        node = CoordinatorNode()
        filler = tiny_disk / "filler"
        with open(filler, "wb", buffering=0) as handle:  # fill the disk to the last byte
            try:
                while True:
                    handle.write(b"\0" * 512)
            except OSError:
                pass
        node.save()  # ENOSPC: logged, not raised
        node.save()
        assert node.failed_saves == 2 and not (target / "checkpoint.npz").exists()
        filler.unlink()  # room again: the next save works and the failures are reset
        node.save()
        assert node.failed_saves == 0 and (target / "checkpoint.npz").is_file()
        assert sorted(path.name for path in target.iterdir()) == ["checkpoint.npz"]  # no temporaries left
        load_checkpoint(target)
        node.destroy_node()
    finally:
        rclpy.shutdown()


def test_the_monitor_drops_hostile_statistics_and_never_dies(policy):
    """altmarl sim's monitor: Infinity, deep nesting, out-of-range states and wrong types are counted and dropped."""
    from std_msgs.msg import String

    from altmarl_ros.bringup.monitor import MonitorNode
    from altmarl_ros.nodes.common import load_world

    _, world, _ = policy
    rclpy.init()
    try:
        monitor = MonitorNode(20, load_world(str(world), 5))
        good = '{"step": 1, "global_state": 0, "global_action": 2, "k_effective": 4}'
        for text in ('{"step": Infinity, "global_state": 0, "global_action": 0, "k_effective": 4}',
                     '{"step": 1e999, "global_state": 0, "global_action": 0, "k_effective": 4}',
                     "[" * 100_000 + "]" * 100_000, '{"step": 1, "global_state": 99, "global_action": -7, '
                     '"k_effective": 4}', '{"step": true, "global_state": 0, "global_action": 0, "k_effective": 4}',
                     '"just a string"', "x" * (2 << 20), good):
            monitor._on_stats(String(data=text))
        assert monitor.log.malformed == 7 and [r.step for r in monitor.log.steps] == [1]
        monitor.destroy_node()
    finally:
        rclpy.shutdown()
