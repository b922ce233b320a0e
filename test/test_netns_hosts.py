"""Robots on their own hosts: the base station, the simulator and each fleet process in a network namespace of
its own on one virtual bridge, DDS discovering across them (benchmarks/_netns.py, benchmarks/netns_hosts.py).

Needs root, iproute2 and namespaces (else skipped, with the reason); the graph test also needs rclpy, the
impairment test iptables and nfnetlink_queue. Every namespace, veth and the bridge are removed afterwards.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _netns  # noqa: E402
import netns_hosts  # noqa: E402

WHY_NOT = _netns.unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no network namespaces here: {WHY_NOT}")

WORLD = """world:
  zone_radius: 1.3
  ring_radius: 2.35
  arena_half_size: 4.2
  decision_period: 6.0
"""
N, K, FLEETS, SPEEDUP = 12, 4, 3, 4.0
FASTDDS_HEARTBEAT_PERIOD = 3.0  # s of wall time: Fast DDS's default WriterTimes.heartbeat_period


def _mine() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(f"{_netns.PREFIX}{os.getpid()}-")]


def test_the_lab_cuts_restores_and_always_cleans_up():
    """A cut port stops every datagram and a restored one passes them again; an exception inside the lab
    still removes its namespaces (and with them the veths and the bridge)."""
    with pytest.raises(RuntimeError, match="boom"):
        with _netns.NetnsLab(["a", "b"]) as lab:
            assert len(_mine()) == 3  # the bridge's namespace and one per host
            up = lab.udp_probe("a", "b", count=20, interval=0.01)
            assert up["loss"] == 0.0
            lab.link_down("b")
            assert lab.link_state("b") == "down"
            assert lab.udp_probe("a", "b", count=10, interval=0.01, timeout=0.5)["loss"] == 1.0
            lab.link_up("b")
            assert lab.udp_probe("a", "b", count=20, interval=0.01)["loss"] == 0.0
            raise RuntimeError("boom")
    assert _mine() == []


def test_a_killed_runs_namespaces_are_removed_by_the_next(tmp_path):
    """SIGKILL leaves no chance to clean up: the next lab (cleanup_stale) removes what the dead process left."""
    code = (f"import sys, time; sys.path.insert(0, {str(BENCHMARKS)!r}); import _netns\n"
            "lab = _netns.NetnsLab(['a']).__enter__(); print(lab.bridge_ns, flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        bridge = child.stdout.readline().strip()
        prefix = bridge[:-len("br")]
        assert {bridge, prefix + "a"} <= set(_netns._netns_names())
    finally:
        child.kill()
        child.wait()
    removed = _netns.cleanup_stale()
    assert {bridge, prefix + "a"} <= set(removed)
    assert not {bridge, prefix + "a"} & set(_netns._netns_names())


@pytest.mark.skipif(_netns.impairment_unavailable() is not None,
                    reason=f"no delay/loss emulation here: {_netns.impairment_unavailable()}")
def test_the_impairment_delays_and_drops_what_crosses_the_link():
    """Delay d and loss p on a host's link, both ways: a UDP echo from another host shows RTT >= 2 d and
    round-trip loss 1 - (1 - p)^2 (within 4 binomial standard deviations); cleared, both are gone."""
    delay, loss, count = 40.0, 0.2, 300
    with _netns.NetnsLab(["a", "b"]) as lab:
        lab.impair("b", delay_ms=delay, loss=loss, seed=5)
        impaired = lab.udp_probe("a", "b", count=count, interval=0.005)
        assert lab.delayer_alive("b")
        lab.clear_impairment("b")
        counts = lab.impairment_counts("b")
        clear = lab.udp_probe("a", "b", count=50, interval=0.005)
    # the delayer's own draws: every probe crossing it, a share `loss` dropped (4 binomial standard deviations)
    assert counts["recv_errors"] == 0 and counts["packets"] >= count
    assert abs(counts["dropped"] / counts["packets"] - loss) <= 4 * math.sqrt(loss * (1 - loss) / counts["packets"])
    assert 2 * delay <= impaired["rtt_ms_min"] and impaired["rtt_ms_median"] <= 4 * delay
    expected = 1 - (1 - loss) ** 2
    assert abs(impaired["loss"] - expected) <= 4 * math.sqrt(expected * (1 - expected) / count)
    assert clear["loss"] == 0.0 and clear["rtt_ms_median"] < delay
    assert _mine() == []


@pytest.fixture(scope="module")
def policy(tiny_run, tmp_path_factory):
    """conftest's tiny k=K run, in this test's world (the hosts' geometry, not conftest's fast world)."""
    pytest.importorskip("rclpy")
    world = tmp_path_factory.mktemp("netns-world") / "world.yaml"
    world.write_text(WORLD)
    return tiny_run(K), world


def test_robots_on_their_own_hosts_k_per_step_a_cut_host_is_presumed_dead_and_readmitted(policy, tmp_path):
    """Base station, simulator and three fleet hosts, each in its own namespace (n=12, k=4, 4 robots per
    fleet). All links up: every step asks exactly k robots and gets exactly their k replies. One fleet
    host's link cut: the coordinator keeps stepping and presumes exactly that host's robots dead within
    liveness_timeout + one decision period + reply_timeout of sim time, then asks only live robots (k of
    them, all answering). Link back: the robots are alive again within heartbeat_period + one decision
    period + reply_timeout + Fast DDS's reliable repair (+ slack) and are asked and answer again."""
    pytest.importorskip("rclpy")
    from altmarl_ros.bringup.launch_plan import LaunchConfig, build_launch_plan
    from altmarl_ros.nodes.params import CoordinatorParams, FleetParams

    out, world = policy
    config = LaunchConfig(n=N, k=K, policy=str(out), world_config=str(world), speedup=SPEEDUP,
                          robots_per_process=N // FLEETS, seed=3, hardware=False)
    plan = build_launch_plan(config)
    hosts, robots = netns_hosts.lab_hosts(plan), netns_hosts.fleet_robots(plan)
    assert hosts == ["base", "world", "fleet0", "fleet1", "fleet2"]
    period = 6.0  # the WORLD's decision_period, s of sim time
    wall_period = period / SPEEDUP
    liveness, reply = config.liveness_timeout, CoordinatorParams.reply_timeout
    heartbeat = FleetParams.heartbeat_period
    slack = 2.0  # s of sim time: /clock granularity and the interpolation of the sim time at the cut
    cut_host = "fleet1"
    cut = set(robots[cut_host])
    with _netns.NetnsLab(hosts) as lab:
        graph = netns_hosts.GraphOnHosts(lab, config, tmp_path, netns_hosts.dds_env(random.randint(1, 100),
                                                                                     tmp_path))
        graph.start()
        try:
            # discovery across the namespaces: every robot known, and one more step so the observer is matched
            assert graph.wait(lambda done: len(done) >= 2 and not done[-1].stats["dead"], 60.0), \
                f"not every robot became known: {graph.observation.finished()[-1:]}"
            baseline = graph.wait_steps(4, 8 * wall_period + 20)
            assert len(baseline) == 4
            for step in baseline:
                assert step.ids is not None and len(step.ids) == K == len(set(step.ids))
                assert step.stats["k_effective"] == K and not step.stats["dead"]
                assert sorted(robot for robot, _ in step.samples) == sorted(step.ids)  # exactly the k asked
            summary = graph.summary(baseline, K)
            assert summary["requests"] == 4 * K and summary["timeouts"] == 0 and summary["rejected"] == 0

            t_cut = time.monotonic()
            lab.link_down(cut_host)
            assert graph.wait(lambda done: done[-1].t_stats > t_cut and cut <= set(done[-1].stats["dead"]),
                              (liveness + 2 * period + reply) / SPEEDUP * 3 + 20), "the cut robots were never dead"
            detected = graph.observation.finished()[-1]
            sim_cut = graph.observation.sim_time_at(t_cut)
            after_cut = graph.wait_steps(3, 6 * wall_period + 20)
            assert len(after_cut) == 3  # the coordinator kept stepping
            assert set(detected.stats["dead"]) == cut  # exactly that host's robots
            elapsed = detected.stats["time"] - sim_cut
            assert liveness - heartbeat - slack <= elapsed <= liveness + period + reply + slack
            for step in after_cut:
                assert set(step.stats["dead"]) == cut and not cut & set(step.ids)
                assert len(step.ids) == K and step.stats["k_effective"] == K

            t_up = time.monotonic()
            lab.link_up(cut_host)
            assert graph.wait(lambda done: done[-1].t_stats > t_up and not done[-1].stats["dead"],
                              (heartbeat + 2 * period + reply) / SPEEDUP * 3 + 20), "never re-admitted"
            readmitted = graph.observation.finished()[-1]
            elapsed = readmitted.stats["time"] - graph.observation.sim_time_at(t_up)
            # a heartbeat lost in the cut holds back the later ones (reliable, in order) until Fast DDS repairs
            # it, at its writers' next HEARTBEAT (every 3 s of wall time): that part at the measured sim rate
            done = graph.observation.finished()
            rate = (done[-1].stats["time"] - done[-4].stats["time"]) / (done[-1].t_stats - done[-4].t_stats)
            assert elapsed <= heartbeat + period + reply + slack + rate * (FASTDDS_HEARTBEAT_PERIOD + 0.5)
            # asked again and answering: P(a step asks none of the 4) = C(8,4)/C(12,4) = 0.14, so within 12
            # steps at 0.14^12 < 1e-10
            assert graph.wait(lambda done: any(s.step > readmitted.step and cut & set(s.ids or [])
                                               and any(r in cut for r, _ in s.samples if r in s.ids) for s in done),
                              12 * wall_period * 3 + 20), "the restored robots were never sampled again"
        finally:
            codes = graph.stop()
        assert not graph.died, f"processes exited early: {graph.died}"
        assert codes["coordinator"] == 0, codes
    assert _mine() == []

