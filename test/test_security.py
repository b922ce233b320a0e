"""ROS 2 security (SROS2, DDS Security) over the whole graph: an outsider on the domain is shut out.

Needs sros2 and a middleware with the DDS Security plugins (CI: the minimal Jazzy of ../shared/ros2,
Cyclone DDS); skipped, saying why, elsewhere. The keystore comes from the one command a user runs
(`altmarl keystore`); every node runs with ROS_SECURITY_STRATEGY=Enforce. An intruder process on the
same ROS_DOMAIN_ID without an enclave listens to every coordinator topic and publishes forged
requests, samples, heartbeats and broadcasts. Secured, it must receive nothing and change nothing;
the same intruder against the same graph without security receives and injects (the control).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("sros2", reason="no sros2 (ROS 2 security tools): source a ROS 2 install")

from altmarl_ros.bringup.launch_plan import LaunchConfig  # noqa: E402
from altmarl_ros.bringup.system import run_system  # noqa: E402
from altmarl_ros.security import main as keystore_main  # noqa: E402

FORGED_SESSION = 1234567

INTRUDER = textwrap.dedent('''
    import json, sys, time
    import rclpy
    from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray, String
    out, seconds, session = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("intruder")
    heard = {}
    def mine(msg):  # its own forgeries come back to its own subscriptions: not heard from the graph
        data = getattr(msg, "data", None)
        return data == 10_000 or (not isinstance(data, (int, str)) and len(data) and int(data[0]) == session)
    def listen(kind, topic):
        heard[topic] = 0
        node.create_subscription(kind, topic, lambda m, t=topic: None if mine(m) else
                                 heard.__setitem__(t, heard[t] + 1), 100)
    listen(Int32MultiArray, "/altmarl/global")
    listen(Int32MultiArray, "/altmarl/sample_request")
    listen(Float64MultiArray, "/altmarl/samples")
    listen(String, "/altmarl/stats")
    listen(Int32, "/altmarl/heartbeat")
    pubs = {"global": node.create_publisher(Int32MultiArray, "/altmarl/global", 10),
            "request": node.create_publisher(Int32MultiArray, "/altmarl/sample_request", 10),
            "sample": node.create_publisher(Float64MultiArray, "/altmarl/samples", 10),
            "heartbeat": node.create_publisher(Int32, "/altmarl/heartbeat", 10)}
    end, step, matched = time.monotonic() + seconds, 1, {}
    while time.monotonic() < end:
        pubs["global"].publish(Int32MultiArray(data=[session, 2**31 - 1 - step, 0, 0]))
        pubs["request"].publish(Int32MultiArray(data=[session, step, 0, 1]))
        pubs["sample"].publish(Float64MultiArray(data=[float(session), 1.0, 0.0, 0.0, 0.0, 0.0]))
        pubs["heartbeat"].publish(Int32(data=10_000))  # an id no robot has
        for name, pub in pubs.items():
            matched[name] = max(matched.get(name, 0), pub.get_subscription_count() - 1)  # minus its own
        step += 1
        end_spin = time.monotonic() + 0.05
        while time.monotonic() < end_spin:
            rclpy.spin_once(node, timeout_sec=0.01)
    json.dump({"heard": heard, "matched": matched}, open(out, "w"))
''')


@pytest.fixture(scope="module")
def trained(tiny_run):
    return tiny_run(2)


@pytest.mark.parametrize("secured", [True, False], ids=["enforce", "control-without-security"])
def test_an_unenrolled_participant_receives_nothing_and_injects_nothing(trained, tmp_path, monkeypatch, secured):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.Random(os.getpid() + secured).randint(1, 100)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    for name in ("ROS_SECURITY_KEYSTORE", "ROS_SECURITY_ENABLE", "ROS_SECURITY_STRATEGY",
                 "ROS_SECURITY_ENCLAVE_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    keystore = tmp_path / "keys"
    if secured:  # the one command: keystore and every enclave of this plan (and of altmarl sim's monitor)
        assert keystore_main([str(keystore), "--n", "8", "--robots-per-process", "4"]) == 0
        enclaves = sorted(path.name for path in (keystore / "enclaves" / "altmarl").iterdir())
        assert enclaves == ["coordinator", "fleet_0", "fleet_1", "monitor", "sim"]
    report = tmp_path / "intruder.json"
    intruder = subprocess.Popen([sys.executable, "-c", INTRUDER, str(report), "25", str(FORGED_SESSION)],
                                env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    config = LaunchConfig(n=8, k=2, policy=str(trained), world_config=str(trained / "world.yaml"), speedup=4.0,
                          decision_steps=10, robots_per_process=4, seed=1, security=str(keystore) if secured else "")
    try:
        run = run_system(config, tmp_path / "logs", timeout=150)
    finally:
        intruder.wait(timeout=60)
    seen = json.loads(report.read_text())
    logs = "\n".join(path.read_text(errors="replace") for path in (tmp_path / "logs").glob("fleet_*.log"))
    stats = run.log.last_stats
    assert not run.died and stats["steps"] == 10 and stats["requests"] == 2 * 10  # the graph itself works
    followed_forged = f"session {FORGED_SESSION}" in logs
    if secured:
        assert seen["heard"] == dict.fromkeys(seen["heard"], 0), seen  # nothing reaches the outsider
        assert seen["matched"] == dict.fromkeys(seen["matched"], 0), seen  # no secured reader matched it
        assert stats["malformed"] == 0 and stats["rejected"] == 0 and not followed_forged
        assert all(len(ids) == 2 for ids in run.log.requested.values())
    else:  # the control: the same intruder is heard and heard from
        assert seen["heard"]["/altmarl/global"] > 0 and seen["heard"]["/altmarl/stats"] > 0, seen
        assert stats["malformed"] > 0 or stats["rejected"] > 0 or followed_forged
