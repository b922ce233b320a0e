"""Benchmark: robots on their own hosts — a cut link and a degraded one, as the base station sees them.

Why: in the field the base station and every robot computer are separate hosts
on a Wi-Fi network. Here each is a Linux network namespace with its own address
on one virtual bridge (`benchmarks/_netns.py`): `base` (coordinator and the
passive observer), `world` (the simulator, standing for the robots' own
sensors and motors) and `fleet0..fleet<m-1>` (one fleet process each, the
robot computers). DDS discovers across them by multicast over the bridge
(`ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`, `ROS_LOCALHOST_ONLY` unset, a private
`ROS_DOMAIN_ID`); Fast DDS runs with a UDPv4-only profile (no shared memory),
so every message really crosses the links. With the default transports
(shared memory + UDPv4) Fast DDS 3.2 did not use shared memory across these
namespaces either (a cut link stopped an Int32 and an array topic within a
second), but the profile keeps it so whatever a Fast DDS version decides.

One graph session, the cases in order (each a window of `--steps` decision steps):

* **all links up**: the baseline.
* **one host cut**: `fleet0`'s bridge port set down (`ip link set p<i> down`
  in the bridge namespace; the host's eth0 loses carrier). Window: from the cut
  until `--steps` steps after its robots are presumed dead.
* **link restored**: the port up again. Window: until `--steps` steps after
  every robot is alive again (re-admitted: any message revives a robot).
* **delay / loss**: on every fleet host's link, both ways, applied inside the
  host namespace (this kernel has no tc netem: an iptables NFQUEUE rule and
  `_netns.nfqueue_delayer`, which holds each packet in the kernel queue for the
  delay and drops a seeded 10 %; traffic with the `world` host is exempt, as a
  robot's sensors are not behind its radio). Each case is first measured with
  a UDP echo probe from `base` to `fleet0` (RTT = 2 x the one-way delay,
  round-trip loss 1 - 0.9^2 = 19 % at 10 %); a row whose probe does not show
  its impairment is flagged.

Measured at the base station (the observer, a `MonitorNode` in the `base`
namespace, stamps each message with `time.monotonic()` on receipt):

* k asked: the ids in `/altmarl/sample_request` per step (min..max);
* k_effective (mean, min): the coordinator's own count of replies in time (stats);
* **decision latency**: request received -> the step's `/altmarl/stats`
  received (the coordinator publishes stats right after its `/altmarl/global`
  broadcast, so this is request -> decision broadcast, both seen in `base`);
  median and p95 over the window. The coordinator ends a step on its 0.05 s
  tick of sim time, which advances with `/clock` (once per 0.1 s control
  period): at speedup 1 the floor is about 100 ms after the last reply;
* last reply: request -> the last in-time sample of that step (median);
* samples: sample messages of the step that reached the base at any time;
* timeouts / late / rejected: the coordinator's counters over the window (late
  replies answer a request after its deadline: to requests a restored host gets only after the restore,
  or samples lost once and resent by DDS after reply_timeout — Fast DDS resends
  at its writer's next HEARTBEAT, every 3 s, and delivers in order, so one lost
  sample also holds back that fleet's later ones; rejected: anything else
  refused, zero on this graph);
* dead: robots presumed dead (max over the window, and at its end).

Run (root, iproute2; iptables for the delay/loss rows):
    python3 benchmarks/netns_hosts.py [--n 12] [--k 4] [--fleets 3] [--steps 10] [--domain-id D]
                                      [--speedup 1] [--decision-period 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _netns  # noqa: E402
from _harness import REPO_ROOT, format_table, machine_info, use_repo_package, write_json  # noqa: E402

use_repo_package()

SCRIPT = str(Path(__file__).resolve())
WORLD_GEOMETRY = {"zone_radius": 1.3, "ring_radius": 2.35, "arena_half_size": 4.2}  # as test/test_ros_graph.py
BASE, WORLD_HOST = "base", "world"

UDP_ONLY_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>udpv4_only</transport_id>
        <type>UDPv4</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="udpv4_only" is_default_profile="true">
      <rtps>
        <userTransports><transport_id>udpv4_only</transport_id></userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def world_yaml(path: Path, decision_period: float) -> Path:
    """The arena of the integration tests with the given decision period (s of sim time)."""
    path.write_text("world:\n" + "".join(f"  {k}: {v}\n" for k, v in WORLD_GEOMETRY.items())
                    + f"  decision_period: {decision_period}\n")
    return path


def train_policy(out: Path, k: int) -> Path:
    """The tiny zones policy the integration tests use (one alternation round, seed 0)."""
    from altmarl_ros import runs
    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.tasks import make_game

    result = alternate(make_game("zones"), k, AlternationConfig(rounds=1, certify=False, eval_seeds=2), seed=0)
    runs.save(result, out, "zones", {})
    return out


def dds_env(domain_id: int, directory: Path) -> dict[str, str]:
    """Environment for DDS across namespaces: a private domain, subnet discovery, UDPv4 only (no SHM)."""
    profile = directory / "fastdds_udpv4_only.xml"
    profile.write_text(UDP_ONLY_PROFILE)
    env = dict(os.environ)
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("ROS_STATIC_PEERS", None)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET",
               FASTDDS_DEFAULT_PROFILES_FILE=str(profile),
               RMW_IMPLEMENTATION=env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"), PYTHONUNBUFFERED="1")
    return env


def host_of(spec: Any) -> str:
    """Where a node of the launch plan runs: fleet_<i> on fleet<i>, the sim on world, the rest on base."""
    if spec.executable == "fleet_node":
        return "fleet" + spec.name.split("_")[1]
    return WORLD_HOST if spec.executable == "sim_node" else BASE


def lab_hosts(plan: list[Any]) -> list[str]:
    return [BASE, WORLD_HOST, *(host_of(s) for s in plan if s.executable == "fleet_node")]


def fleet_robots(plan: list[Any]) -> dict[str, list[int]]:
    return {host_of(s): list(range(s.parameters["first_robot"], s.parameters["last_robot"]))
            for s in plan if s.executable == "fleet_node"}


# --- the observer (runs inside the base namespace) --------------------------------------------------------
def observe(case: dict[str, Any]) -> None:
    """The passive MonitorNode, each message it takes stamped (monotonic) and written as a JSON line."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from altmarl_ros import runs
    from altmarl_ros.bringup.monitor import MonitorNode
    from altmarl_ros.nodes.common import load_world

    trained = runs.load(case["policy"], expect_task="zones")
    world = load_world(case["world_config"], trained.game.num_local_states)
    out = open(case["out"], "a", buffering=1)  # noqa: SIM115 - closed at the end

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")

    from altmarl_ros.nodes import topics

    class Observer(MonitorNode):
        """The monitor, and each request, sample and stats message stamped on receipt (the project's parsers
        read the wire layout; a message they refuse is only counted, as the monitor does)."""

        def _on_request(self, msg: Any) -> None:
            try:
                session, step, ids = topics.parse_request(msg.data, self.n)
                write({"e": "request", "t": time.monotonic(), "session": session, "step": step, "ids": ids})
            except topics.MessageError:
                pass
            super()._on_request(msg)

        def _on_sample(self, msg: Any) -> None:
            try:
                session, step, robot, *_ = topics.parse_sample(msg.data, self.n, self.world.zones)
                write({"e": "sample", "t": time.monotonic(), "session": session, "step": step, "id": robot})
            except topics.MessageError:
                pass
            super()._on_sample(msg)

        def _on_stats(self, msg: Any) -> None:
            try:
                write({"e": "stats", "t": time.monotonic(), "stats": json.loads(msg.data)})
            except ValueError:
                pass
            super()._on_stats(msg)

    rclpy.init(args=[])
    node = Observer(case["n"], world)
    from std_msgs.msg import Int32

    node.create_subscription(Int32, topics.HEARTBEAT, lambda m: write({"e": "heartbeat", "t": time.monotonic(),
                                                                        "id": int(m.data)}), 500)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    write({"e": "ready", "t": time.monotonic()})
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        out.close()


# --- reading what the observer saw --------------------------------------------------------------------
@dataclass
class Step:
    step: int
    t_request: float | None = None
    ids: list[int] | None = None
    samples: list[tuple[int, float]] = field(default_factory=list)  # (robot, t) of every sample message
    t_stats: float | None = None
    stats: dict[str, Any] | None = None

    @property
    def decision_latency(self) -> float | None:
        """Request received -> the step's stats received (s), both at the base station."""
        if self.t_request is None or self.t_stats is None:
            return None
        return self.t_stats - self.t_request

    @property
    def last_reply_latency(self) -> float | None:
        """Request received -> the last sample of an asked robot that came before the step's stats (s)."""
        if self.t_request is None or self.t_stats is None or self.ids is None:
            return None
        times = [t for robot, t in self.samples if robot in self.ids and t <= self.t_stats]
        return max(times) - self.t_request if times else None


class Observation:
    """The observer's JSON lines, read incrementally; steps keyed by number."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.steps: dict[int, Step] = {}
        self.stats_order: list[int] = []  # steps in the order their stats arrived
        self.ready = False
        self.heartbeats: list[tuple[float, int]] = []  # (t, robot)

    def poll(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode().splitlines():
            record = json.loads(line)
            kind = record["e"]
            if kind == "ready":
                self.ready = True
                continue
            if kind == "heartbeat":
                self.heartbeats.append((record["t"], record["id"]))
                continue
            number = record["stats"]["step"] if kind == "stats" else record["step"]
            step = self.steps.setdefault(number, Step(number))
            if kind == "request":
                step.t_request, step.ids = record["t"], record["ids"]
            elif kind == "sample":
                step.samples.append((record["id"], record["t"]))
            elif kind == "stats":
                step.t_stats, step.stats = record["t"], record["stats"]
                self.stats_order.append(number)

    def finished(self) -> list[Step]:
        """Steps whose stats arrived, in order."""
        return [self.steps[s] for s in self.stats_order]

    def sim_time_at(self, wall: float) -> float | None:
        """The coordinator's sim clock at a monotonic wall time, interpolated between its stats messages."""
        import numpy as np

        done = self.finished()
        if len(done) < 2:
            return None
        walls = np.array([s.t_stats for s in done])
        sims = np.array([s.stats["time"] for s in done])
        return float(np.interp(wall, walls, sims))


# --- the graph on hosts -------------------------------------------------------------------------------
class GraphOnHosts:
    """The launch plan's processes in their hosts' namespaces, plus the observer in `base`."""

    def __init__(self, lab: _netns.NetnsLab, config: Any, work: Path, env: dict[str, str]) -> None:
        from altmarl_ros.bringup.launch_plan import build_launch_plan
        from altmarl_ros.bringup.supervisor import Supervisor, python_command
        from altmarl_ros.bringup.system import stop_grace

        self.lab, self.config, self.work, self.env = lab, config, work, env
        self.plan = build_launch_plan(config)
        self.grace = stop_grace(config)
        self.supervisor = Supervisor(self.plan, work / "logs", env,
                                     command=lambda spec: lab.command(host_of(spec), python_command(spec)))
        self.observation = Observation(work / "observer.jsonl")
        self.observer: subprocess.Popen | None = None
        self.died: list[str] = []

    def start(self, ready_timeout: float = 30.0) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        case = {"n": self.config.n, "policy": self.config.policy, "world_config": self.config.world_config,
                "out": str(self.observation.path)}
        with open(self.work / "logs" / "observer.log", "wb") as log:
            self.observer = self.lab.popen(BASE, [sys.executable, SCRIPT, "--observe", json.dumps(case)],
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        deadline = time.monotonic() + ready_timeout
        while not self.observation.ready:
            if self.observer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the observer did not start: {(self.work / 'logs' / 'observer.log').read_text()}")
            time.sleep(0.1)
            self.observation.poll()
        self.supervisor.start()

    def check(self) -> None:
        """Record children that exited; the observer, coordinator or sim exiting is fatal."""
        for child in self.supervisor.newly_dead():
            self.died.append(child.spec.name)
            if child.spec.name in ("coordinator", "sim"):
                raise RuntimeError(f"{child.spec.name} exited with {child.process.returncode}:\n"
                                   f"{self.supervisor.tail(child.spec.name)}")
        if self.observer is not None and self.observer.poll() is not None:
            raise RuntimeError(f"the observer exited with {self.observer.returncode}")

    def wait(self, until: Callable[[list[Step]], bool], timeout: float) -> bool:
        """Poll until `until(finished steps)` holds; False after `timeout` wall seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.observation.poll()
            self.check()
            if until(self.observation.finished()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def wait_steps(self, count: int, timeout: float) -> list[Step]:
        """The next `count` finished steps (fewer if `timeout` passes)."""
        start = len(self.observation.finished())
        self.wait(lambda done: len(done) >= start + count, timeout)
        return self.observation.finished()[start:start + count]

    def summary(self, window: list[Step], k: int) -> dict[str, Any]:
        """summarise_window with the stats of the step finished just before the window."""
        order = self.observation.stats_order
        index = order.index(window[0].step) if window else 0
        before = self.observation.steps[order[index - 1]].stats if index > 0 else None
        return summarise_window(window, k, before)

    def stop(self) -> dict[str, int | None]:
        codes = self.supervisor.stop(self.grace)
        if self.observer is not None and self.observer.poll() is None:
            os.killpg(self.observer.pid, signal.SIGINT)
            try:
                self.observer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.observer.pid, signal.SIGKILL)
                self.observer.wait()
        self.observation.poll()
        return codes


# --- one benchmark session ------------------------------------------------------------------------------
IMPAIRMENTS = [  # (case, delay ms, jitter ms, loss)
    ("delay 50 ms", 50.0, 0.0, 0.0),
    ("delay 200 ms", 200.0, 0.0, 0.0),
    ("10 % loss", 0.0, 0.0, 0.10),
    ("delay 50-200 ms + 10 % loss", 50.0, 150.0, 0.10),
]


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    return values[len(values) // 2] if values else None


def _quantile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)] if values else None


_ZERO = {"timeouts": 0, "late": 0, "rejected": 0, "requests": 0}


def summarise_window(steps: list[Step], k: int, before: dict[str, Any] | None) -> dict[str, Any]:
    """One table row's numbers from a window of finished steps (`before`: the stats of the step before it)."""
    stats = [s.stats for s in steps]
    k_eff = [st["k_effective"] for st in stats]
    asked = [len(s.ids) for s in steps if s.ids is not None]
    seen = [len(s.samples) for s in steps if s.ids is not None]  # sample messages that reached the base
    decision = [s.decision_latency for s in steps if s.decision_latency is not None]
    reply = [s.last_reply_latency for s in steps if s.last_reply_latency is not None]
    row: dict[str, Any] = {"steps": len(steps), "first_step": steps[0].step if steps else None,
                           "last_step": steps[-1].step if steps else None}
    if not steps:
        return row
    last = stats[-1]
    row.update(
        asked_min=min(asked, default=None), asked_max=max(asked, default=None),
        samples_min=min(seen, default=None), samples_max=max(seen, default=None),
        k_effective_mean=sum(k_eff) / len(k_eff), k_effective_min=min(k_eff),
        steps_with_k=sum(v == k for v in k_eff),
        decision_ms_median=None if not decision else 1000 * _median(decision),
        decision_ms_p95=None if not decision else 1000 * _quantile(decision, 0.95),
        decision_ms_max=None if not decision else 1000 * max(decision),
        last_reply_ms_median=None if not reply else 1000 * _median(reply),
        # the counters are cumulative: the window's share is last - the step before the window
        timeouts=last["timeouts"] - (before or _ZERO)["timeouts"],
        late=last["late"] - (before or _ZERO)["late"],
        rejected=last["rejected"] - (before or _ZERO)["rejected"],
        requests=last["requests"] - (before or _ZERO)["requests"],
        dead_max=max(len(st["dead"]) for st in stats), dead_end=len(last["dead"]),
        sim_s=last["time"] - stats[0]["time"], wall_s=steps[-1].t_stats - steps[0].t_stats)
    return row


def run_session(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the graph on its hosts, go through the cases, return every row (and why some were not run)."""
    from altmarl_ros.bringup.launch_plan import LaunchConfig, build_launch_plan

    policy = train_policy(work / "policy", args.k)
    world = world_yaml(work / "world.yaml", args.decision_period)
    config = LaunchConfig(n=args.n, k=args.k, policy=str(policy), world_config=str(world), speedup=args.speedup,
                          robots_per_process=math.ceil(args.n / args.fleets), seed=args.seed)
    plan = build_launch_plan(config)
    hosts = lab_hosts(plan)
    robots = fleet_robots(plan)
    cut_host = hosts[2]
    period_wall = args.decision_period / args.speedup
    step_timeout = 4 * period_wall + 10.0
    impair_reason = _netns.impairment_unavailable()
    netem_reason = _netns.netem_unavailable()
    rows: list[dict[str, Any]] = []
    events: dict[str, Any] = {}
    with _netns.NetnsLab(hosts) as lab:
        env = dds_env(args.domain_id, work)
        graph = GraphOnHosts(lab, config, work, env)
        graph.start()
        try:
            started = time.monotonic()
            if not graph.wait(lambda done: bool(done) and not done[-1].stats["dead"], 120.0):
                raise RuntimeError("the coordinator never knew every robot within 120 s")
            events["all_known_wall_s"] = time.monotonic() - started

            def probe() -> dict[str, Any]:
                """UDP echo base -> the cut host; then one step, so the probe's two short-lived processes
                (CPU at their start, on a small machine) are not in a window."""
                measured = lab.udp_probe(BASE, cut_host, count=args.probes, interval=0.01)
                graph.wait_steps(1, step_timeout)
                return measured

            measured = probe()
            rows.append({"case": "all links up", "emulation": "-", "probe": measured,
                         **graph.summary(graph.wait_steps(args.steps, args.steps * step_timeout), args.k)})

            # one host cut
            cut = set(robots[cut_host])
            t_cut = time.monotonic()
            lab.link_down(cut_host)
            graph.wait(lambda done: done[-1].t_stats > t_cut and cut <= set(done[-1].stats["dead"]),
                       60.0 + 6 * period_wall)
            done = graph.observation.finished()
            after = [s for s in done if s.t_stats > t_cut]
            detected = next((s for s in after if cut <= set(s.stats["dead"])), None)
            tail = graph.wait_steps(args.steps, args.steps * step_timeout)
            window = after + tail
            row = {"case": f"one host cut ({cut_host}, robots {min(cut)}-{max(cut)})",
                   "emulation": f"ip link set {lab.hosts[cut_host].port} down", "probe": probe(),
                   **graph.summary(window, args.k)}
            if detected is not None:
                sim_cut = graph.observation.sim_time_at(t_cut)
                row["presumed_dead_after_s"] = detected.t_stats - t_cut
                row["presumed_dead_after_sim_s"] = detected.stats["time"] - sim_cut if sim_cut is not None else None
                row["cut_robots_asked_after_detection"] = sum(len(cut & set(s.ids or [])) for s in window
                                                              if s.step > detected.step)
            rows.append(row)

            # link restored
            t_up = time.monotonic()
            lab.link_up(cut_host)
            graph.wait(lambda done: done[-1].t_stats > t_up and not cut & set(done[-1].stats["dead"]),
                       60.0 + 6 * period_wall)
            done = graph.observation.finished()
            after = [s for s in done if s.t_stats > t_up]
            readmitted = next((s for s in after if not cut & set(s.stats["dead"])), None)
            tail = graph.wait_steps(args.steps, args.steps * step_timeout)
            window = after + tail
            row = {"case": "link restored", "emulation": f"ip link set {lab.hosts[cut_host].port} up",
                   "probe": probe(), **graph.summary(window, args.k)}
            if readmitted is not None:
                sim_up = graph.observation.sim_time_at(t_up)
                row["readmitted_after_s"] = readmitted.t_stats - t_up
                row["readmitted_after_sim_s"] = readmitted.stats["time"] - sim_up if sim_up is not None else None
                sampled = next((s for s in window if s.step > readmitted.step and cut & set(s.ids or [])
                                and any(r in cut for r, _ in s.samples)), None)
                row["sampled_again_step"] = None if sampled is None else sampled.step
            rows.append(row)

            for index, (name, delay, jitter, loss) in enumerate(IMPAIRMENTS):
                if impair_reason:
                    rows.append({"case": name, "emulation": "NOT EMULATED", "reason": impair_reason})
                    continue
                fleets = [h for h in hosts if h.startswith("fleet")]
                for i, host in enumerate(fleets):
                    lab.impair(host, delay_ms=delay, jitter_ms=jitter, loss=loss,
                               seed=args.seed * 1000 + 10 * index + i, exempt=[lab.hosts[WORLD_HOST].ip])
                measured = probe()  # and one step, which may also straddle the impairment's start
                window = graph.wait_steps(args.steps, args.steps * step_timeout)
                alive = all(lab.delayer_alive(h) for h in fleets)
                for host in fleets:
                    lab.clear_impairment(host)  # the delayer writes its final counts as it stops
                counts = [lab.impairment_counts(h) for h in fleets]
                row = {"case": name, "emulation": "NFQUEUE delayer" + ("" if alive else " (a delayer DIED)"),
                       "probe": measured, "delay_ms": delay, "jitter_ms": jitter, "loss": loss,
                       "delayer_packets": sum(c.get("packets", 0) for c in counts),
                       "delayer_dropped": sum(c.get("dropped", 0) for c in counts),
                       "delayer_recv_errors": sum(c.get("recv_errors", 0) for c in counts),
                       **graph.summary(window, args.k)}
                row["probe_check"] = probe_check(measured, delay, jitter, loss, args.probes)
                rows.append(row)
                graph.wait(lambda done: not done[-1].stats["dead"], 60.0 + 6 * period_wall)  # recover first
                graph.wait_steps(1, step_timeout)
        finally:
            codes = graph.stop()
        leftovers = lab.leftovers()
    return {"rows": rows, "events": events, "exit_codes": codes, "died": graph.died, "netem": netem_reason,
            "impairment": impair_reason, "hosts": {h: lab.hosts[h].ip for h in hosts}, "fleets": robots,
            "leftover_namespaces_during_close": leftovers, "remaining_after": _netns_leftovers()}


def _netns_leftovers() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(f"{_netns.PREFIX}{os.getpid()}-")]


def probe_check(probe: dict[str, Any], delay: float, jitter: float, loss: float, count: int) -> str:
    """'ok' if the UDP probe shows the impairment: RTT >= 2 x delay, and round-trip loss near 1 - (1-loss)^2."""
    problems = []
    if probe["received"] == 0:
        return "no echo came back"
    if probe["rtt_ms_min"] < 2 * delay * 0.95:
        problems.append(f"min RTT {probe['rtt_ms_min']:.1f} ms < 2 x {delay:g} ms")
    if jitter == 0 and delay and probe["rtt_ms_median"] > 2 * delay + 50:
        problems.append(f"median RTT {probe['rtt_ms_median']:.1f} ms far above 2 x {delay:g} ms")
    expected = 1 - (1 - loss) ** 2
    spread = 4 * math.sqrt(max(expected * (1 - expected), 1e-4) / count)  # 4 binomial standard deviations
    if abs(probe["loss"] - expected) > spread + 0.01:
        problems.append(f"loss {probe['loss']:.1%} vs expected {expected:.1%}")
    return "ok" if not problems else "; ".join(problems)


def _f(value: Any, fmt: str = ".0f") -> str:
    return "-" if value is None else format(value, fmt)


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    rows = result["rows"]
    print(f"\nrobots on their own hosts: n={args.n}, k={args.k}, {len(result['fleets'])} fleet hosts "
          f"({', '.join(f'{h}: {r[0]}-{r[-1]}' for h, r in result['fleets'].items())}), speedup {args.speedup:g}, "
          f"decision period {args.decision_period:g} s sim, reply_timeout 1.5 s sim, liveness_timeout 6 s sim; "
          f"hosts {result['hosts']}")
    print("decision latency = request received -> the step's stats (published right after the broadcast) received, "
          "both in the base namespace; last reply = request -> last in-time sample. The coordinator ends a step on "
          "its 0.05 s tick of sim time, which advances with /clock (one message per 0.1 s sim control period): at "
          "speedup 1 a step ends up to ~100 ms after its last reply. samples = sample messages of the step that "
          "reached the base at any time (late ones included). A sample lost on the link is resent only at its "
          "writer's next DDS HEARTBEAT (Fast DDS: every 3 s), after reply_timeout, and holds back that writer's later "
          "samples (reliable, in order): it comes back as a late reply (counted, not accepted) and lowers k_eff.\n")
    table = []
    for r in rows:
        if r.get("emulation") == "NOT EMULATED":
            table.append([r["case"], "not emulated"] + ["-"] * 14)
            continue
        p = r.get("probe") or {}
        table.append([
            r["case"], _f(p.get("rtt_ms_median"), ".1f"), _f(None if not p else 100 * p["loss"], ".0f"),
            str(r.get("steps", 0)), f"{r.get('asked_min', '-')}..{r.get('asked_max', '-')}",
            f"{r.get('samples_min', '-')}..{r.get('samples_max', '-')}",
            _f(r.get("k_effective_mean"), ".2f"), _f(r.get("k_effective_min"), "d"),
            _f(r.get("decision_ms_median")), _f(r.get("decision_ms_p95")), _f(r.get("last_reply_ms_median")),
            str(r.get("timeouts", "-")), str(r.get("late", "-")), str(r.get("rejected", "-")),
            f"{r.get('dead_max', '-')}/{r.get('dead_end', '-')}", r.get("probe_check", "-")])
    print(format_table(["case", "probe RTT ms", "probe loss %", "steps", "k asked", "samples", "k_eff mean",
                        "k_eff min",
                        "decision ms", "p95", "last reply ms", "timeouts", "late", "rejected", "dead max/end",
                        "probe check"], table))
    for r in rows:
        notes = []
        if "presumed_dead_after_s" in r:
            notes.append(f"presumed dead {r['presumed_dead_after_s']:.1f} s wall "
                         f"({_f(r.get('presumed_dead_after_sim_s'), '.1f')} s sim) after the cut; "
                         f"cut robots asked after that: {r['cut_robots_asked_after_detection']}")
        if "readmitted_after_s" in r:
            notes.append(f"re-admitted {r['readmitted_after_s']:.1f} s wall "
                         f"({_f(r.get('readmitted_after_sim_s'), '.1f')} s sim) after the restore; "
                         f"first step sampling one of them again: {r.get('sampled_again_step')}")
        if r.get("emulation") == "NOT EMULATED":
            notes.append(f"not emulated: {r['reason']}")
        elif r.get("emulation", "-") != "-":
            notes.append(f"emulation: {r['emulation']}")
        if "delayer_packets" in r:
            share = r["delayer_dropped"] / max(r["delayer_packets"], 1)
            notes.append(f"the delayers took {r['delayer_packets']} packets and dropped {r['delayer_dropped']} "
                         f"({share:.1%}), {r['delayer_recv_errors']} netlink receive errors")
        print(f"* {r['case']}: " + "; ".join(notes))
    print(f"\ntc netem: {result['netem'] or 'available'} -> delay and loss by NFQUEUE "
          f"(iptables rule + userspace verdicts after the delay, seeded drops) inside each fleet namespace")
    if result["died"]:
        print(f"processes that exited early: {result['died']}")
    print(f"namespaces left after the run: {result['remaining_after'] or 'none'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12, help="robots")
    parser.add_argument("--k", type=int, default=4, help="robots sampled per step (a policy is trained for it)")
    parser.add_argument("--fleets", type=int, default=3, help="fleet hosts (namespaces), robots split evenly")
    parser.add_argument("--steps", type=int, default=20, help="decision steps per case window")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random in 1..100)")
    parser.add_argument("--speedup", type=float, default=1.0, help="sim seconds per wall second (1: delays are real)")
    parser.add_argument("--decision-period", type=float, default=2.0, help="s of sim time between decisions")
    parser.add_argument("--probes", type=int, default=200, help="UDP echo probes per case")
    parser.add_argument("--seed", type=int, default=1, help="seed of the graph and of the impairment draws")
    parser.add_argument("--work-dir", default=None, help="policy, world, logs (default: a new temp dir)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--observe", help=argparse.SUPPRESS)  # internal: the observer process
    args = parser.parse_args(argv)
    if args.observe is None:
        if args.k < 1 or args.n < args.k:
            parser.error("need 1 <= k <= n")
        if not 1 <= args.fleets <= args.n:
            parser.error("need 1 <= fleets <= n")
        if args.n - math.ceil(args.n / args.fleets) < args.k:
            parser.error("with one fleet host cut, fewer than k robots would be left")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.observe is not None:
        observe(json.loads(args.observe))
        return
    reason = _netns.unavailable()
    if reason:
        raise SystemExit(f"cannot build the namespaces: {reason}")
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"rclpy is not importable: {exc}") from None
    if args.domain_id is None:
        args.domain_id = random.randint(1, 100)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="altmarl_netns_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}; ROS_DOMAIN_ID={args.domain_id}", file=sys.stderr, flush=True)
    result = run_session(args, work)
    print_table(result, args)
    if args.json:
        write_json(args.json, {"benchmark": "netns_hosts", "command": [sys.executable, *sys.argv],
                               "settings": vars(args), "machine": machine_info(), **result})
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
