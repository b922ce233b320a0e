"""Benchmark: the running ROS 2 node graph (sim + fleet processes + coordinator) as n grows.

For each n (default 10, 100, 1000) one fresh Python process starts the whole
graph with `altmarl_ros.bringup.system.run_system` (real rclpy, one OS process per
node as the supervisor starts them) and its passive monitor, on a private DDS
domain kept on localhost (ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST,
ROS_LOCALHOST_ONLY=1). Settings: kinematic backend, speedup `--speedup`,
decision_period 1.0 s (1 Hz decisions), control_rate 10 Hz (odometry and
cmd_vel at 10 Hz per robot, or per fleet's pose and command arrays on the
batched link), k = 4 with a k = 4 policy trained once per
invocation (``alternate(make_game('zones'), 4, AlternationConfig(rounds=1,
certify=False, eval_seeds=2), seed=0)`` + ``runs.save``). Geometry as in
world_step_rate.py: spacing 0.45 m, zone_radius grown from 1.85 m in 0.05 m
steps until one zone holds n robots, ring = zone / sin(pi/5) * 1.05,
arena = ring + zone + 0.5.

Processes: one sim, ceil(n / robots_per_process) fleet processes (default
robots_per_process 50 for n <= 100 and 125 beyond: n = 10 -> 1 fleet,
100 -> 2, 1000 -> 8; on the batched link from n = 400 on, 4 fleets) and one
coordinator.

The measured window ("stepping phase") is `--steps` decision steps, starting
at the first coordinator step (stats message) at which every robot is known
to the coordinator (its `dead` list is empty; robots that have never been
heard from count as dead) and which is not the first step the monitor saw.
If that does not happen within `--wait-all` wall seconds after the first
step, the window starts anyway (flagged). The coordinator runs with
decision_steps = 0; the benchmark ends the run one decision step after the
window's last step (so the monitor has taken in that step's samples; the
benchmark's `RunObserver` ends the run the way the coordinator's own end does)
or at `--timeout`.

Measured:

* real-time factor = (stats `time` of the window's last step - that of its
  first) / (wall time between the monitor receiving those two stats
  messages); `time` is the coordinator's sim clock when it finished the step.
  Wall times are `time.monotonic()` taken inside the monitor's stats
  callback (`StepRecord.wall_time`).
* CPU % per role = delta(utime + stime) from /proc/<pid>/stat over the wall
  time between two samples, taken when the window's first and last stats
  messages arrive (100 % = one core; the machine has `cpu_count` cores).
  Also the monitor (this benchmark process, not part of the graph) and the
  whole machine's busy share from /proc/stat.
* peak RSS per role = VmHWM from /proc/<pid>/status at the window's end,
  before anything is stopped.
* messages per step at the coordinator: sample messages per step counted by
  the passive monitor (same topic, same QoS) for the window's steps, and the
  coordinator's own stats (delta over the window): replies / steps, late,
  rejected, timeouts.
* achieved control rate: cmd_vel messages per wall second of the first and
  last robot of every fleet process, received by the monitor over the same
  window as the CPU samples (10 Hz expected at RTF 1).
* startup: wall seconds from Supervisor.start() to the first stats message
  the monitor received (and that step's number), and until every robot was
  known (first stats message with an empty `dead` list); "sim up" / "fleets
  up" (the last fleet): when each process logged its first INFO line, right
  after building its nodes (ROS log stamps are wall-clock epoch).

Links: every n runs on both links (`--link`), per_robot only up to
`--per-robot-max-n` (1000). speedup asked: `--speedup` (default 6 for
n <= 1000, else 2; one value or one per n); the RTF is what the graph kept.
After the tables the script prints issue 10's targets (batched n = 1000 at
RTF >= 4, n = 10,000 at RTF >= 1, startup < 10 s at n = 1000, k sample
messages per step at every n) with what was measured, and
the transport reference: `--transport-n` poses at the control rate between two
rclpy processes, on one nav_msgs/Odometry topic per pose against one
geometry_msgs/PoseArray per tick (delivered poses/s, publisher ticks/s, CPU %).

Run:  python3 benchmarks/ros_graph.py [--n 10 100 1000 10000] [--link per_robot batched] [--speedup 6 [...]]
                                      [--steps S] [--robots-per-process R] [--transport-n 1000]
                                      [--timeout T] [--json out.json]

Wall-clock measurements; they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from _harness import (
    REPO_ROOT,
    RESULT_MARKER,
    emit_result,
    format_table,
    machine_info,
    package_versions,
    peak_rss_mib,
    run_case,
    use_repo_package,
    write_json,
)

SCRIPT = str(Path(__file__).resolve())
K = 4
DECISION_PERIOD = 1.0  # s (sim time)
CONTROL_RATE = 10.0  # Hz
SPACING = 0.45
TICKS = os.sysconf("SC_CLK_TCK")


def default_steps(n: int) -> int:
    return 20 if n <= 100 else 10


def default_robots_per_process(n: int, link: str = "per_robot") -> int:
    """50 for n <= 100, else 125; on the batched link from 400 robots on, four fleet processes (a fleet's cost
    there hardly grows with its robots, and fewer processes contend less for the 2 cores)."""
    if link == "batched" and n >= 400:
        return math.ceil(n / 4)
    return 50 if n <= 100 else 125


def default_speedup(n: int) -> float:
    """Above what the targets ask (RTF 4 at n = 1000, 1 at n = 10,000): a factor kept is then a target met."""
    return 6.0 if n <= 1000 else 2.0


def default_timeout(n: int) -> float:
    return 150.0 if n <= 100 else 600.0


# --- /proc readers ------------------------------------------------------------------------------
def cpu_ticks(pid: int | str) -> int | None:
    """utime + stime of a process (all its threads), in clock ticks; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def status_kib(pid: int | str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest (already in user)
    return total - idle, total


def role_of(name: str) -> str:
    return "fleet" if name.startswith("fleet_") else name


# --- children ----------------------------------------------------------------------------------
def fit_geometry(n: int, spacing: float) -> dict[str, float]:
    sys.path.insert(0, str(Path(SCRIPT).parent))
    from world_step_rate import fit_geometry as fit

    return fit(n, spacing)


def train_policy(case: dict[str, Any]) -> dict[str, Any]:
    """Child: the k = 4 policy every graph run uses."""
    from altmarl_ros import runs
    from altmarl_ros.marl.alternation import AlternationConfig, alternate
    from altmarl_ros.tasks import make_game

    start = time.perf_counter()
    result = alternate(make_game("zones"), K, AlternationConfig(rounds=1, certify=False, eval_seeds=2), seed=0)
    runs.save(result, case["out"], "zones", {})
    return {"policy": case["out"], "train_s": time.perf_counter() - start}


def measure_graph(case: dict[str, Any]) -> dict[str, Any]:
    """Child: start the graph for one n, measure the window, stop it."""
    os.environ["ROS_DOMAIN_ID"] = str(case["domain_id"])
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Kilted / Jazzy
    os.environ["ROS_LOCALHOST_ONLY"] = "1"  # Humble
    from altmarl_ros.bringup.launch_plan import LaunchConfig, build_launch_plan
    from altmarl_ros.bringup.system import RunObserver, run_system

    n, steps, work = case["n"], case["steps"], Path(case["work"])
    geometry = fit_geometry(n, SPACING)
    world_yaml = work / "world.yaml"
    world_yaml.parent.mkdir(parents=True, exist_ok=True)
    world_yaml.write_text("world:\n" + "".join(f"  {key}: {geometry[key]!r}\n" for key in
                                               ("zones", "robot_spacing", "zone_radius", "ring_radius",
                                                "arena_half_size"))
                          + f"  decision_period: {DECISION_PERIOD}\n  control_rate: {CONTROL_RATE}\n")
    config = LaunchConfig(n=n, k=K, policy=case["policy"], backend="kinematic",
                          robots_per_process=case["robots_per_process"], world_config=str(world_yaml),
                          speedup=case["speedup"], decision_steps=0, seed=0, link=case["link"])
    plan = build_launch_plan(config)

    ranges = [(s.parameters["first_robot"], s.parameters["last_robot"]) for s in plan
              if s.executable == "fleet_node"]
    # the achieved control rate: per-robot link, the cmd_vel of the first and last robot of every fleet
    # process; batched link, every fleet's command array
    if case["link"] == "batched":
        probes = [first for first, _ in ranges]
    else:
        probes = sorted({robot for first, last in ranges for robot in (first, last - 1)})
    cmd_times: dict[int, list[float]] = {robot: [] for robot in probes}
    received: list[tuple[float, dict]] = []  # (monotonic wall at the monitor's stats callback, stats)
    state: dict[str, Any] = {"monitor": None, "launch": None, "spawned": None, "start": None, "end": None,
                             "first_wall": None, "forced_start": False, "end_reason": None}
    started = time.monotonic()

    def collect(run, error) -> dict[str, Any]:
        return _collect(case, plan, geometry, received, state, cmd_times, probes, started, run, error)

    def snapshot(supervisor: Any, index: int, with_memory: bool) -> dict[str, Any]:
        children = {c.spec.name: c.process.pid for c in supervisor.children}
        snap = {"wall": time.monotonic(), "index": index, "ticks": {name: cpu_ticks(pid) for name, pid in
                                                                  children.items()},
                "monitor_ticks": cpu_ticks("self"), "machine": machine_ticks()}
        if with_memory:
            snap["hwm_kib"] = {name: status_kib(pid, "VmHWM") for name, pid in children.items()}
            snap["rss_kib"] = {name: status_kib(pid, "VmRSS") for name, pid in children.items()}
        return snap

    class Window(RunObserver):
        """Probes cmd_vel on the monitor, times the start, cuts the window, ends the run one step after it."""

        def started(self, monitor: Any, supervisor: Any) -> None:
            from geometry_msgs.msg import Twist
            from std_msgs.msg import Float64MultiArray

            from altmarl_ros.nodes.topics import batch_topic

            state["monitor"] = monitor
            if case["link"] == "batched":
                for first, last in ranges:
                    monitor.create_subscription(Float64MultiArray, batch_topic(first, last, "cmd_vel"),
                                                lambda _, r=first: cmd_times[r].append(time.monotonic()), 10)
            else:
                for robot in probes:
                    monitor.create_subscription(Twist, f"/robot_{robot}/cmd_vel",
                                                lambda _, r=robot: cmd_times[r].append(time.monotonic()), 10)
            state["launch"], state["launch_epoch"] = time.monotonic(), time.time()

        def spawned(self, supervisor: Any) -> None:
            state["spawned"] = time.monotonic()

        def on_stats(self, record: Any, stats: dict, supervisor: Any) -> bool:
            received.append((record.wall_time, stats))
            index = len(received) - 1
            wall = record.wall_time
            if state["first_wall"] is None:
                state["first_wall"] = wall
                state["first_index"] = index
            if state["start"] is None:
                all_known = not stats["dead"]
                late = wall - state["first_wall"] >= case["wait_all"]
                if index > state["first_index"] and (all_known or late):
                    state["forced_start"] = not all_known
                    state["start"] = snapshot(supervisor, index, False)
                return False
            if state["end"] is not None:
                # one step after the window: the monitor has had a decision period to take in the last
                # window step's sample messages
                return True
            if stats["step"] >= received[state["start"]["index"]][1]["step"] + steps:
                state["end"] = snapshot(supervisor, index, True)
                state["end_reason"] = "window complete"
            return False

        def stopping(self, supervisor: Any) -> None:
            if state["start"] is not None and state["end"] is None:  # timeout / failure: end the window here
                state["end"] = snapshot(supervisor, len(received) - 1, True)
                state["end_reason"] = state["end_reason"] or "stopped before the window's last step"

        def stopped(self, exit_codes: dict, seconds: float) -> None:
            state["stop_s"], state["codes"] = seconds, exit_codes
            # everything is measured now; emit it before run_system returns, in case that hangs (the
            # parent then keeps this result and kills this process)
            try:
                emit_result({**collect(None, None), "teardown": "pending"})
            except Exception:  # noqa: BLE001 - the final result below still comes
                traceback.print_exc()

    error = None
    run = None
    started = time.monotonic()
    try:
        run = run_system(config, work / "logs", timeout=case["timeout"], observer=Window())
    except Exception as exc:  # report what happened with the numbers gathered so far
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    return {**collect(run, error), "teardown": "ok"}


def _collect(case, plan, geometry, received, state, cmd_times, probes, started, run, error) -> dict[str, Any]:
    """The result of one graph run from what the wrappers gathered (run is None before run_system returns)."""
    import numpy as np

    n, steps, work = case["n"], case["steps"], Path(case["work"])
    total_wall = time.monotonic() - started
    monitor = state["monitor"]
    end_reason = state["end_reason"]
    if state["end"] is None and state["start"] is not None:
        end_reason = "no end snapshot"

    result: dict[str, Any] = {
        **geometry, "robots_per_process": case["robots_per_process"], "link": case["link"],
        "speedup": case["speedup"],
        "fleet_processes": sum(1 for s in plan if s.executable == "fleet_node"), "processes": len(plan),
        "steps_requested": steps, "timeout_s": case["timeout"], "domain_id": case["domain_id"],
        "log_dir": str(work / "logs"), "total_wall_s": total_wall, "error": error,
        "died": run.died if run else None, "exit_codes": state.get("codes"), "stop_s": state.get("stop_s"),
        "end_reason": end_reason if state["start"] else "window never started",
        "forced_start": state["forced_start"], "stats_received": len(received),
        "last_step": received[-1][1]["step"] if received else None,
    }
    # when each process had built its nodes: the first INFO line of its log (ROS logs stamp wall-clock epoch)
    up = {}
    for spec in plan:
        try:
            for line in (work / "logs" / f"{spec.name}.log").read_text(errors="replace").splitlines():
                match = re.match(r"\[INFO\] \[(\d+\.\d+)\]", line)
                if match:
                    up[spec.name] = float(match.group(1)) - state["launch_epoch"]
                    break
        except OSError:
            pass
    fleet_up = [v for name, v in up.items() if role_of(name) == "fleet"]
    result.update(up_s_process=up, sim_up_s=up.get("sim"), coordinator_up_s=up.get("coordinator"),
                  fleets_up_max_s=max(fleet_up) if fleet_up else None)
    if received:
        result["timeline"] = [[round(w - state["launch"], 3), s["step"], s["time"], len(s["dead"]), s["k_effective"]]
                              for w, s in received]  # wall s since launch, step, sim time, robots not known, k_eff
        first_wall, first_stats = received[0]
        result["startup_s"] = first_wall - state["launch"]
        result["spawn_s"] = state["spawned"] - state["launch"]
        result["first_step_seen"] = first_stats["step"]
        result["first_step_sim_time"] = first_stats["time"]
        result["known_at_first_step"] = n - len(first_stats["dead"])
        known = [w for w, s in received if not s["dead"]]
        result["all_known_s"] = known[0] - state["launch"] if known else None
        result["max_dead"] = max(len(s["dead"]) for _, s in received)
    start, end = state["start"], state["end"]
    if start is not None and end is not None and end["index"] > start["index"]:
        (w0, s0), (w1, s1) = received[start["index"]], received[end["index"]]
        window = received[start["index"]:end["index"] + 1]
        walls = np.diff([w for w, _ in window])
        sims = np.diff([s["time"] for _, s in window])
        result.update(window_first_step=s0["step"], window_last_step=s1["step"], window_steps=s1["step"] - s0["step"],
                      sim_s=s1["time"] - s0["time"], wall_s=w1 - w0, rtf=(s1["time"] - s0["time"]) / (w1 - w0),
                      step_wall_mean_s=float(walls.mean()), step_wall_max_s=float(walls.max()),
                      step_sim_mean_s=float(sims.mean()), step_sim_max_s=float(sims.max()),
                      known_at_window_start=n - len(s0["dead"]), min_known_in_window=n - max(len(s["dead"]) for _, s
                                                                                                in window))
        cpu_wall = end["wall"] - start["wall"]
        per_process = {}
        for name, t0 in start["ticks"].items():
            t1 = end["ticks"].get(name)
            per_process[name] = None if t0 is None or t1 is None else 100.0 * (t1 - t0) / TICKS / cpu_wall
        roles: dict[str, float] = {}
        for name, pct in per_process.items():
            if pct is not None:
                roles[role_of(name)] = roles.get(role_of(name), 0.0) + pct
        rates = [sum(1 for t in times if start["wall"] < t <= end["wall"]) / cpu_wall for times in cmd_times.values()]
        result.update(cmd_probe_robots=probes, cmd_hz_wall_min=min(rates), cmd_hz_wall_mean=float(np.mean(rates)),
                      cmd_hz_wall_max=max(rates), cmd_hz_sim_mean=float(np.mean(rates)) / result["rtf"])
        gaps = np.concatenate([np.diff([t for t in times if start["wall"] < t <= end["wall"]])
                               for times in cmd_times.values()])
        # wall gaps between one robot's consecutive cmd_vel, in 0.1 s bins (at RTF 1 a 10 Hz loop gives 0.1)
        bins = np.bincount(np.round(gaps / 0.1).astype(int)) if len(gaps) else np.zeros(0, int)
        result["cmd_gap_hist_0p1s"] = {f"{0.1 * i:.1f}": int(c) for i, c in enumerate(bins) if c}
        busy0, total0 = start["machine"]
        busy1, total1 = end["machine"]
        result.update(cpu_wall_s=cpu_wall, cpu_pct_process=per_process, cpu_pct_role=roles,
                      cpu_pct_children=sum(roles.values()),
                      cpu_pct_monitor=100.0 * (end["monitor_ticks"] - start["monitor_ticks"]) / TICKS / cpu_wall,
                      machine_busy_pct=100.0 * (busy1 - busy0) / max(total1 - total0, 1) * os.cpu_count())
        hwm = {name: (v / 1024 if v is not None else None) for name, v in end["hwm_kib"].items()}
        fleet = [v for name, v in hwm.items() if role_of(name) == "fleet" and v is not None]
        result.update(peak_rss_mib_process=hwm, peak_rss_mib_sim=hwm.get("sim"),
                      peak_rss_mib_coordinator=hwm.get("coordinator"),
                      peak_rss_mib_fleet_max=max(fleet) if fleet else None,
                      peak_rss_mib_fleet_total=sum(fleet) if fleet else None,
                      peak_rss_mib_monitor=peak_rss_mib())
        window_steps = range(s0["step"] + 1, s1["step"] + 1)
        if monitor is not None:
            counts = [monitor.log.samples_per_step[s] for s in window_steps if s in monitor.log.requested]
            asked = [len(monitor.log.requested[s]) for s in window_steps if s in monitor.log.requested]
            result.update(monitor_steps=len(counts),
                          samples_per_step_mean=float(np.mean(counts)) if counts else None,
                          samples_per_step_max=max(counts) if counts else None,
                          samples_per_step_min=min(counts) if counts else None,
                          steps_not_k=sum(1 for c in counts if c != K), asked_per_step_max=max(asked, default=None))
        d = {key: s1[key] - s0[key] for key in ("steps", "requests", "replies", "late", "rejected", "timeouts")}
        k_eff = [s["k_effective"] for _, s in window[1:]]
        result.update(coord_window=d, coord_replies_per_step=d["replies"] / max(d["steps"], 1),
                      coord_requests_per_step=d["requests"] / max(d["steps"], 1),
                      k_effective_min=min(k_eff), k_effective_mean=float(np.mean(k_eff)))
    if received:
        last = received[-1][1]
        keys = ("steps", "requests", "replies", "late", "rejected", "timeouts")
        result["coord_total"] = {key: last[key] for key in keys}
    if run is not None:
        result.update(decisions_honoured=run.summary.decisions_honoured, mode_accuracy=run.summary.mode_accuracy,
                      run_wall_s=run.wall_seconds)
    result.update(package_versions())
    return result


TRANSPORT_PUBLISHER = """
import sys, time
import rclpy
from geometry_msgs.msg import Pose, PoseArray
from nav_msgs.msg import Odometry
mode, n, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rclpy.init()
node = rclpy.create_node("transport_pub")
if mode == "per_topic":
    pubs = [node.create_publisher(Odometry, f"/t/robot_{i}/odom", 10) for i in range(n)]
else:
    pub = node.create_publisher(PoseArray, "/t/poses", 10)
time.sleep(3.0)  # discovery
ticks, end, next_tick = 0, time.monotonic() + seconds, time.monotonic()
while time.monotonic() < end:
    if mode == "per_topic":
        for i, publisher in enumerate(pubs):
            msg = Odometry()
            msg.pose.pose.position.x = float(i)
            publisher.publish(msg)
    else:
        msg = PoseArray()
        msg.poses = [Pose() for _ in range(n)]
        for i, pose in enumerate(msg.poses):
            pose.position.x = float(i)
        pub.publish(msg)
    ticks += 1
    next_tick += 1.0 / rate
    time.sleep(max(0.0, next_tick - time.monotonic()))
print(ticks, flush=True)
"""


def measure_transport(case: dict[str, Any]) -> dict[str, Any]:
    """Child: n poses at `rate` Hz from one rclpy process to another, on n Odometry topics or in one PoseArray."""
    os.environ["ROS_DOMAIN_ID"] = str(case["domain_id"])
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
    import rclpy
    from geometry_msgs.msg import PoseArray
    from nav_msgs.msg import Odometry

    mode, n, rate, seconds = case["mode"], case["n"], case["rate"], case["seconds"]
    rclpy.init()
    node = rclpy.create_node("transport_sub")
    received = {"poses": 0}

    def count(poses: int):
        def on_message(_msg) -> None:
            received["poses"] += poses
        return on_message

    if mode == "per_topic":
        for i in range(n):
            node.create_subscription(Odometry, f"/t/robot_{i}/odom", count(1), 10)
    else:
        node.create_subscription(PoseArray, "/t/poses", count(n), 10)
    publisher = subprocess.Popen([sys.executable, "-c", TRANSPORT_PUBLISHER, mode, str(n), str(rate),
                                  str(seconds + 3.0)], stdout=subprocess.PIPE, text=True)
    begin = time.monotonic()
    window: dict[str, Any] = {}
    while publisher.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.05)
        elapsed = time.monotonic() - begin
        if "start" not in window and elapsed >= 4.0:  # 3 s of discovery, then 1 s of warm-up
            window["start"] = (time.monotonic(), received["poses"], cpu_ticks(publisher.pid), cpu_ticks("self"))
        if "start" in window and "end" not in window and elapsed >= 4.0 + seconds - 1.5:
            window["end"] = (time.monotonic(), received["poses"], cpu_ticks(publisher.pid), cpu_ticks("self"))
    ticks = int(publisher.stdout.read().split()[-1])
    node.destroy_node()
    rclpy.shutdown()
    (w0, r0, p0, s0), (w1, r1, p1, s1) = window["start"], window["end"]
    wall = w1 - w0
    return {"mode": mode, "n": n, "rate": rate, "offered_poses_per_s": n * rate,
            "delivered_poses_per_s": (r1 - r0) / wall, "publisher_ticks_per_s": ticks / (seconds + 3.0),
            "publisher_cpu_pct": 100.0 * (p1 - p0) / TICKS / wall,
            "subscriber_cpu_pct": 100.0 * (s1 - s0) / TICKS / wall}


def run_child(case_json: str) -> None:
    use_repo_package()
    case = json.loads(case_json)
    emit_result({"train": train_policy, "graph": measure_graph, "transport": measure_transport}[case["kind"]](case))


# --- parent ------------------------------------------------------------------------------------
def run_graph_case(case: dict[str, Any], teardown_timeout: float) -> dict[str, Any]:
    """Like _harness.run_case, but a child whose teardown hangs after it reported is killed, not waited for.

    The child reports once right after the supervisor stopped the graph (everything measured) and
    again after run_system returned; if the second report or its exit does not come within
    `teardown_timeout` s of the first, the child is killed (its Python stack is recorded first when
    py-spy is on PATH) and the first report is used.
    """
    command = [sys.executable, SCRIPT, "--one", json.dumps(case)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    results: list[dict[str, Any]] = []
    first_at: list[float] = []
    errors: list[str] = []

    def read_out() -> None:
        for line in proc.stdout:
            if line.startswith(RESULT_MARKER):
                results.append(json.loads(line[len(RESULT_MARKER):]))
                first_at.append(time.monotonic())

    def read_err() -> None:
        errors.extend(proc.stderr)

    readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    hung, stack = None, None
    while proc.poll() is None:
        time.sleep(0.5)
        waited = time.monotonic() - first_at[0] if first_at else 0.0
        if waited > teardown_timeout or time.monotonic() - started > case["timeout"] + 900:
            hung = waited
            if shutil.which("py-spy"):
                dump = subprocess.run(["py-spy", "dump", "--native", "--pid", str(proc.pid)], capture_output=True,
                                      text=True, check=False, timeout=60)
                stack = dump.stdout[-6000:]
            proc.kill()
            proc.wait()
    for reader in readers:
        reader.join(timeout=10)
    if not results:
        raise RuntimeError(f"case {case} failed with exit code {proc.returncode}:\n{''.join(errors)[-4000:]}")
    result = {**results[-1], "child_exit_code": proc.returncode}
    if hung is not None:
        result["teardown"] = (f"hung: the benchmark process had not exited {hung:.0f} s after the graph was stopped; "
                              f"killed")
        result["teardown_stack"] = stack
    return result


def _f(value: Any, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def print_tables(rows: list[dict[str, Any]]) -> None:
    print(f"\nROS 2 node graph: kinematic, speedup asked per n {sorted({(r['n'], r['speedup']) for r in rows})}, "
          f"{1 / DECISION_PERIOD:g} Hz decisions, "
          f"{CONTROL_RATE:g} Hz control, k = {K}; cpu_count = {os.cpu_count()} (100 % = one core)\n")
    print(format_table(
        ["n", "link", "procs", "rob/proc", "zone r m", "sim up s", "fleets up s", "startup s", "1st step", "known@1st",
         "all known s", "window steps",
         "sim s", "wall s", "RTF", "wall/step max s", "cmd Hz min", "cmd Hz mean", "end"],
        [[str(r["n"]), r.get("link", "-"), str(r["processes"]), str(r["robots_per_process"]), f"{r['zone_radius']:.2f}",
          _f(r.get("sim_up_s"), ".1f"), _f(r.get("fleets_up_max_s"), ".1f"),
          _f(r.get("startup_s"), ".1f"), str(r.get("first_step_seen", "-")), str(r.get("known_at_first_step", "-")),
          _f(r.get("all_known_s"), ".1f"),
          f"{r['window_first_step']}..{r['window_last_step']}" if "window_first_step" in r else "-",
          _f(r.get("sim_s"), ".1f"), _f(r.get("wall_s"), ".1f"), _f(r.get("rtf"), ".3f"),
          _f(r.get("step_wall_max_s"), ".2f"), _f(r.get("cmd_hz_wall_min"), ".1f"),
          _f(r.get("cmd_hz_wall_mean"), ".1f"),
          "ok" if r.get("end_reason") == "window complete" and not r.get("error") else "INCOMPLETE"]
         for r in rows]))
    print("\nCPU % over the window (sum over a role's processes) and peak RSS (VmHWM) MiB at the window's end")
    print(format_table(
        ["n", "link", "children %", "sim %", "fleets %", "coord %", "monitor %", "machine busy %", "RSS sim",
         "RSS fleet max", "RSS fleets sum", "RSS coord", "RSS monitor"],
        [[str(r["n"]), r.get("link", "-"), _f(r.get("cpu_pct_children"), ".0f"),
          _f(r.get("cpu_pct_role", {}).get("sim"), ".0f"),
          _f(r.get("cpu_pct_role", {}).get("fleet"), ".0f"), _f(r.get("cpu_pct_role", {}).get("coordinator"), ".0f"),
          _f(r.get("cpu_pct_monitor"), ".0f"), _f(r.get("machine_busy_pct"), ".0f"),
          _f(r.get("peak_rss_mib_sim"), ".0f"), _f(r.get("peak_rss_mib_fleet_max"), ".0f"),
          _f(r.get("peak_rss_mib_fleet_total"), ".0f"), _f(r.get("peak_rss_mib_coordinator"), ".0f"),
          _f(r.get("peak_rss_mib_monitor"), ".0f")] for r in rows]))
    print(f"\nMessages per decision step at the coordinator over the window (target: k = {K} whatever n is)")
    print(format_table(
        ["n", "link", "monitor steps", "samples/step mean", "max", "min", "steps != k", "coord steps", "replies/step",
         "requests/step", "late", "rejected", "timeouts", "k_eff min"],
        [[str(r["n"]), r.get("link", "-"), str(r.get("monitor_steps", "-")), _f(r.get("samples_per_step_mean")),
          str(r.get("samples_per_step_max", "-")), str(r.get("samples_per_step_min", "-")),
          str(r.get("steps_not_k", "-")), str(r.get("coord_window", {}).get("steps", "-")),
          _f(r.get("coord_replies_per_step")), _f(r.get("coord_requests_per_step")),
          str(r.get("coord_window", {}).get("late", "-")), str(r.get("coord_window", {}).get("rejected", "-")),
          str(r.get("coord_window", {}).get("timeouts", "-")),
          str(r.get("k_effective_min", "-"))] for r in rows]))
    for r in rows:
        notes = []
        if r.get("error"):
            notes.append(f"error: {r['error']}")
        if r.get("died"):
            notes.append(f"died: {r['died']}")
        if r.get("forced_start"):
            notes.append(f"window started before every robot was known (--wait-all elapsed): "
                         f"{r.get('known_at_window_start')} of {r['n']} known at its first step")
        killed = {name: code for name, code in (r.get("exit_codes") or {}).items() if code not in (0, None)}
        if killed:
            notes.append(f"exit codes at the end (supervisor: SIGINT, then SIGTERM, then SIGKILL, "
                         f"bringup.system.stop_grace apart; stopping took {r.get('stop_s') or 0:.1f} s): {killed}")
        if r.get("end_reason") not in (None, "window complete"):
            notes.append(f"end: {r['end_reason']} (stats received {r['stats_received']}, last step "
                         f"{r['last_step']}, total wall {r['total_wall_s']:.0f} s)")
        if r.get("teardown", "ok") != "ok":
            notes.append(f"teardown: {r['teardown']}")
        if notes:
            print(f"n={r['n']} {r.get('link', '')}: " + "; ".join(notes))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000, 10000], help="robots (plus one leader)")
    parser.add_argument("--link", nargs="+", default=["per_robot", "batched"], choices=["per_robot", "batched"],
                        help="sim <-> fleet links to measure at every n (default both)")
    parser.add_argument("--per-robot-max-n", type=int, default=1000,
                        help="largest n run on the per-robot link (default 1000: one topic per robot beyond that "
                             "only measures the middleware)")
    parser.add_argument("--speedup", type=float, nargs="+", default=None,
                        help="simulated seconds per wall second asked of the sim: one value, or one per --n "
                             "(default 6 for n <= 1000, else 2; the RTF measured is what the graph keeps up with)")
    parser.add_argument("--transport-n", type=int, default=1000,
                        help="poses of the transport reference (0 = skip it)")
    parser.add_argument("--steps", type=int, default=None,
                        help="decision steps in the measured window (default: 20 for n <= 100, else 10, "
                             "times ceil(speedup))")
    parser.add_argument("--robots-per-process", type=int, default=None,
                        help="robots per fleet process (default 50 for n <= 100, else 125; batched from "
                             "n = 400 on: n / 4)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="wall seconds per n before the run is stopped (default 150 for n <= 100, else 600)")
    parser.add_argument("--wait-all", type=float, default=120.0,
                        help="wall seconds after the first step to wait for every robot before the window starts")
    parser.add_argument("--work-dir", default=None, help="policy, world YAML and node logs (default: a new temp dir)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID of the first n; the i-th n uses this + i (default: random in 1..100)")
    parser.add_argument("--teardown-timeout", type=float, default=90.0,
                        help="wall seconds to wait for a benchmark process to exit after the graph was stopped")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args(argv)
    if any(n < K for n in args.n):
        parser.error(f"--n values must be >= k = {K}")
    if args.speedup is None:
        args.speedup = [default_speedup(n) for n in args.n]
    if len(args.speedup) not in (1, len(args.n)) or min(args.speedup) <= 0:
        parser.error("--speedup takes one value > 0, or one per --n")
    if len(args.speedup) == 1:
        args.speedup = args.speedup * len(args.n)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    return args


def transport_reference(n: int, domain: int) -> dict[str, Any]:
    """The middleware's limit on this machine: n poses at the control rate on n topics, and in one message."""
    rows = {}
    for offset, mode in enumerate(("per_topic", "one_message")):
        case = {"kind": "transport", "mode": mode, "n": n, "rate": CONTROL_RATE, "seconds": 8.0,
                "domain_id": domain + offset}
        rows[mode] = run_case(SCRIPT, case)
    return rows


def print_targets(rows: list[dict[str, Any]], transport: dict[str, Any] | None) -> None:
    """Issue 10's targets next to what was measured (kinematic; RTF needs --speedup at least the target)."""
    def find(n: int, link: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["n"] == n and r["link"] == link), None)

    table = []
    for n, link, what, target, value, ok in (
            (1000, "batched", "real-time factor", ">= 4", "rtf", lambda v: v >= 4.0),
            (10000, "batched", "real-time factor", ">= 1", "rtf", lambda v: v >= 1.0),
            (1000, "batched", "startup s (launch -> first step)", "< 10", "startup_s", lambda v: v < 10.0)):
        r = find(n, link)
        v = None if r is None else r.get(value)
        window = {} if r is None else r.get("coord_window", {})
        held = "-" if not window else f"{window['timeouts']} timeouts, {window['late']} late"
        table.append([str(n), link, what, target, _f(v), held,
                      "-" if v is None else ("met" if ok(v) else "NOT MET")])
    for r in rows:
        v = r.get("samples_per_step_max")
        table.append([str(r["n"]), r["link"], "sample messages per step (max over the window)", f"= k = {K}",
                      "-" if v is None else str(v), f"min {r.get('samples_per_step_min', '-')}",
                      "-" if v is None else ("met" if v <= K and
                                                                          r.get("samples_per_step_min") == K
                                                                          else "NOT MET")])
    print("\nTargets (issue 10)")
    print("(an RTF is met only if the graph kept more than the target: ask for more with --speedup; the protocol "
          "column says whether every asked robot still answered within reply_timeout)")
    print(format_table(["n", "link", "measure", "target", "measured", "protocol in the window", ""], table))
    if transport:
        print(f"\nTransport reference: {transport['per_topic']['n']} poses at {CONTROL_RATE:g} Hz between two rclpy "
              "processes (nav_msgs/Odometry on one topic per pose, or one geometry_msgs/PoseArray per tick)")
        print(format_table(
            ["layout", "offered poses/s", "delivered poses/s", "publisher ticks/s", "publisher CPU %",
             "subscriber CPU %"],
            [[mode, _f(t["offered_poses_per_s"], ".0f"), _f(t["delivered_poses_per_s"], ".0f"),
              _f(t["publisher_ticks_per_s"], ".1f"), _f(t["publisher_cpu_pct"], ".0f"),
              _f(t["subscriber_cpu_pct"], ".0f")] for mode, t in transport.items()]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        run_child(args.one)
        return
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="altmarl_ros_graph_"))
    domain = args.domain_id if args.domain_id is not None else random.randint(1, 100)
    print(f"work dir {work} (policy, world YAML, node logs); ROS_DOMAIN_ID={domain}.."
          f"{domain + len(args.n) - 1}", file=sys.stderr, flush=True)
    trained = run_case(SCRIPT, {"kind": "train", "out": str(work / "policy")})
    print(f"trained the k={K} policy in {trained['train_s']:.1f} s", file=sys.stderr, flush=True)
    rows = []
    speedups = dict(zip(args.n, args.speedup, strict=True))
    cases = [(n, link) for n in args.n for link in args.link if link == "batched" or n <= args.per_robot_max_n]
    for i, (n, link) in enumerate(cases):
        speedup = speedups[n]
        # a domain (and so Fast DDS ports) of its own per case: a killed process can leave a port's
        # shared-memory segment locked, and the next run on the same ports would block on it
        case = {"kind": "graph", "n": n, "link": link, "speedup": speedup, "policy": trained["policy"],
                "work": str(work / f"n{n}-{link}"),
                "steps": args.steps or default_steps(n) * math.ceil(speedup),
                "robots_per_process": args.robots_per_process or default_robots_per_process(n, link),
                "timeout": args.timeout or default_timeout(n), "wait_all": args.wait_all,
                "domain_id": (domain + i - 1) % 200 + 1}
        print(f"n={n} {link}: {math.ceil(n / case['robots_per_process'])} fleet process(es), {case['steps']} "
              "steps ...", file=sys.stderr, flush=True)
        rows.append({"n": n, **run_graph_case(case, args.teardown_timeout)})
    transport = None
    if args.transport_n:
        print(f"transport reference, {args.transport_n} poses ...", file=sys.stderr, flush=True)
        transport = transport_reference(args.transport_n, (domain + len(cases)) % 200 + 1)
    print_tables(rows)
    print_targets(rows, transport)
    if args.json:
        write_json(args.json, {
            "benchmark": "ros_graph",
            "command": [sys.executable, *sys.argv],
            "settings": {"k": K, "decision_period": DECISION_PERIOD, "control_rate": CONTROL_RATE,
                         "speedup": speedups, "backend": "kinematic", "spacing": SPACING, "wait_all": args.wait_all,
                         "train_s": trained["train_s"], "work_dir": str(work)},
            "targets": {"n1000_batched_rtf_min": 4.0, "n10000_batched_rtf_min": 1.0, "n1000_startup_s_max": 10.0,
                        "coordinator_messages_per_step": K},
            "transport_reference": transport,
            "machine": machine_info(),
            "results": rows,
        })
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
