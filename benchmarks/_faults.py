"""Helpers of `fault_injection.py`: bounded subprocesses, verdicts, corrupt checkpoints, and a hostile ROS 2 peer.

Why a separate module: the script itself stays a readable list of cases. The
parent side imports only the standard library at module level (numpy and the
package are imported where a corrupt file is made or a run is loaded), and
`python3 benchmarks/_faults.py peer SPEC_JSON` runs the hostile peer in its
own process (it needs rclpy), so the peer can never take the harness down.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import io
import json
import math
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30

# --- bounded subprocesses -------------------------------------------------------------------


@dataclass
class Proc:
    """What one bounded command did."""

    argv: list[str]
    returncode: int | None  # None: timed out (then killed)
    stdout: str
    stderr: str
    wall: float
    timed_out: bool = False


def limits(memory_bytes: int) -> Callable[[], None]:
    """A preexec_fn: cap the address space (inherited by every process the command starts), no core files."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every case: this checkout's package first, no memory budget unless a case sets one."""
    env = dict(os.environ)
    env.pop("ALTMARL_MEMORY_BUDGET", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc), so a timed-out case is stopped whole and nothing else is."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def started(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), to tell it from a later process given the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and its descendants (only processes this harness started)."""
    for target in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def run_bounded(argv: Sequence[str], timeout: float, memory_bytes: int, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> Proc:
    """Run one command with a wall-clock timeout and an address-space cap; the whole tree is killed on timeout."""
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            env=env or child_env(), cwd=cwd or REPO_ROOT, preexec_fn=limits(memory_bytes),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Proc(list(argv), proc.returncode, out, err, time.monotonic() - start)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate()
        return Proc(list(argv), None, out, err, time.monotonic() - start, timed_out=True)


def altmarl(*args: str) -> list[str]:
    """The `altmarl` command of this checkout, in this interpreter."""
    return [sys.executable, "-m", "altmarl_ros.cli", *args]


def shown(argv: Sequence[str]) -> str:
    """A command as a user would type it (`altmarl ...`), paths kept."""
    parts = list(argv)
    if parts[:3] == [sys.executable, "-m", "altmarl_ros.cli"]:
        parts = ["altmarl", *parts[3:]]
    return " ".join(_quote(p) for p in parts)


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else "'" + text.replace("'", "'\\''") + "'"


# --- verdicts -------------------------------------------------------------------------------

ERROR_LINE = re.compile(r"^(?:altmarl(?: [\w-]+)?: )?error: ")


def last_exception(text: str) -> str:
    """The exception line that ends the last traceback in `text` (e.g. 'MemoryError: ...')."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line)
    for line in lines[start + 1:]:
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)?(: |$)", line) and \
                not line.startswith(" "):
            return line.strip()[:100]
    return "traceback"


def outcome(proc: Proc) -> str:
    """What happened: refused, ran on, crashed, timeout, killed."""
    if proc.timed_out:
        return f"timeout ({proc.wall:.0f} s)"
    rc = proc.returncode
    assert rc is not None
    if rc < 0:
        return f"killed ({signal.Signals(-rc).name})"
    if "Traceback (most recent call last)" in proc.stderr:
        return f"crashed: {last_exception(proc.stderr)}"
    if rc == 0:
        return "ran on"
    if rc == 2:
        return "refused, exit 2"
    return f"exit {rc}"


def error_lines(proc: Proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ERROR_LINE.match(line)]


def error_clear(proc: Proc, names: Sequence[str]) -> str:
    """'yes' when exit 2, exactly one `error:` line, no traceback, and that line matches every pattern in `names`."""
    if proc.timed_out:
        raised = "Traceback (most recent call last)" in proc.stderr
        return "no: Python traceback, then no exit before the timeout" if raised else "no: no exit before the timeout"
    if "Traceback (most recent call last)" in proc.stderr:
        return "no: Python traceback"
    if proc.returncode == 0:
        return "no: accepted silently (exit 0)"
    if proc.returncode != 2:
        return f"no: exit {proc.returncode}"
    lines = error_lines(proc)
    if len(lines) != 1:
        return f"no: {len(lines)} error lines"
    missing = [pattern for pattern in names if not re.search(pattern, lines[0], re.IGNORECASE)]
    if missing:
        return f"no: does not name {missing[0]!r}"
    return "yes"


def first_error(proc: Proc) -> str:
    """The error line (or the last stderr line) for the evidence column."""
    lines = error_lines(proc)
    if lines:
        return lines[0]
    tail = [line for line in proc.stderr.splitlines() if line.strip()]
    return tail[-1] if tail else proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


# --- data lost ------------------------------------------------------------------------------

def digests(*roots: Path) -> dict[str, str]:
    """SHA-256 of every regular file under `roots` (a file root is itself), keyed by path."""
    found: dict[str, str] = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def compare(before: dict[str, str], after: dict[str, str]) -> str:
    """'no' when every file is byte-identical and still there, else what changed."""
    gone = [p for p in before if p not in after]
    changed = [p for p in before if p in after and after[p] != before[p]]
    if not gone and not changed:
        return "no"
    parts = ([f"{len(gone)} gone ({Path(gone[0]).name})"] if gone else []) + \
        ([f"{len(changed)} changed ({Path(changed[0]).name})"] if changed else [])
    return "yes: " + ", ".join(parts)


# --- corrupt checkpoints --------------------------------------------------------------------

def members(path: Path) -> dict[str, bytes]:
    """The raw (uncompressed) members of an .npz, in order."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_zip(path: Path, content: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    return path


def npy_bytes(value: Any) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
    return buffer.getvalue()


def read_meta(path: Path) -> dict[str, Any]:
    import numpy as np

    raw = np.lib.format.read_array(io.BytesIO(members(path)["__meta__.npy"]), allow_pickle=False)
    return json.loads(raw.tobytes().decode())


def with_meta(source: Path, target: Path, meta: dict[str, Any], redigest: bool = True) -> Path:
    """`source` with its metadata replaced; `redigest` signs it as the package would (a well-formed forgery)."""
    import numpy as np

    from altmarl_ros.marl.checkpoint import DIGEST_KEY, meta_digest

    meta = json.loads(json.dumps(meta))
    if redigest:
        meta[DIGEST_KEY] = meta_digest(meta)
    content = members(source)
    content["__meta__.npy"] = npy_bytes(np.frombuffer(json.dumps(meta, indent=1).encode(), dtype=np.uint8))
    return write_zip(target, content)


def flip_bit(source: Path, target: Path, offset: int, bit: int = 0) -> Path:
    data = bytearray(source.read_bytes())
    data[offset] ^= 1 << bit
    target.write_bytes(bytes(data))
    return target


def zip_regions(path: Path) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of the parts of a zip: each member's local header and data, the central
    directory and the end record, so bit flips land where the table says."""
    data = path.read_bytes()
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, eocd + 12)
    regions = {"central directory": (cd_offset, cd_offset + cd_size), "end record": (eocd, len(data))}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            start = info.header_offset
            name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
            body = start + 30 + name_len + extra_len
            regions[f"{info.filename} header"] = (start, body)
            regions[f"{info.filename} header name"] = (start + 30, start + 30 + name_len)
            regions[f"{info.filename} header extra"] = (start + 30 + name_len, body)  # zip64 sizes readers skip
            regions[f"{info.filename} data"] = (body, body + info.compress_size)
    return regions


def claim_size(source: Path, target: Path, member: str, size: int) -> Path:
    """`source` with `member`'s central-directory entry claiming `size` bytes uncompressed (a zip64 extra field),
    which is what a reader trusts before it decompresses anything."""
    data = source.read_bytes()
    eocd = data.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    entries, at = [], cd_offset
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, at + 28)
        end = at + 46 + name_len + extra_len + comment_len
        entry = bytearray(data[at:end])
        if entry[46:46 + name_len].decode() == member:
            struct.pack_into("<I", entry, 24, 0xFFFFFFFF)  # uncompressed size: see the zip64 extra field
            extra = struct.pack("<HHQ", 0x0001, 8, size)
            entry[46 + name_len + extra_len:46 + name_len + extra_len] = extra
            struct.pack_into("<H", entry, 30, extra_len + len(extra))
        entries.append(bytes(entry))
        at = end
    directory = b"".join(entries)
    tail = bytearray(data[eocd:])
    struct.pack_into("<I", tail, 12, len(directory))
    target.write_bytes(data[:cd_offset] + directory + bytes(tail))
    return target


def npy_header_claims(source: Path, target: Path, member: str, shape: tuple[int, ...]) -> Path:
    """`source` with `member`'s .npy header claiming `shape` (its data and the metadata unchanged)."""
    content = members(source)
    raw = content[member]
    version = (raw[6], raw[7])
    header_len = struct.unpack_from("<H" if version[0] == 1 else "<I", raw, 8)[0]
    start = 10 if version[0] == 1 else 12
    header = raw[start:start + header_len].decode("latin1")
    header = re.sub(r"'shape': \([^)]*\)", f"'shape': {shape!r}", header)
    body = raw[start + header_len:]
    padded = header.rstrip() + " " * (64 - (start + len(header.rstrip()) + 1) % 64) + "\n"
    content[member] = raw[:8] + struct.pack("<H", len(padded)) + padded.encode("latin1") + body
    return write_zip(target, content)


# --- a run directory: one complete run, and which ------------------------------------------

def run_identity(run_dir: Path) -> str:
    """Load `run_dir` with the package's loader and check its three files are one run; returns 'seed=<s>'.

    Raises on anything else (the caller reports it as lost data)."""
    import csv

    from altmarl_ros import runs

    trained = runs.load(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    meta = trained.meta
    best = summary["best_round_record"]
    row = rows[int(summary["best_round"]) - 1]
    if summary["seed"] != meta["seed"] or len(rows) != len(meta["history"]):
        raise ValueError(f"summary (seed {summary['seed']}) and checkpoint (seed {meta['seed']}) are not one run")
    if not math.isclose(float(row["value_mean"]), best["value_mean"]) or \
            not math.isclose(meta["history"][int(summary["best_round"]) - 1]["value_mean"], best["value_mean"]):
        raise ValueError("history.csv, summary.json and the checkpoint disagree on the best round's value")
    return f"seed={meta['seed']}"


# --- the hostile peer (its own process; needs rclpy) ----------------------------------------

FORGED_STEP = 2**31 - 1


@dataclass
class Window:
    """What the peer saw from one attack until the next (or the end)."""

    attack: str
    wall: float  # time.time() at the attack, to cut the node logs
    step0: int
    offsets: dict[str, int]
    steps: list[int] = field(default_factory=list)
    k_eff: list[int] = field(default_factory=list)
    decided: dict[int, int] = field(default_factory=dict)  # robot -> decisions on real steps after the attack
    forged_decisions: int = 0
    malformed0: int = -1
    malformed1: int = -1
    note: str = ""
    end: str = ""


class _Peer:
    """A participant on the swarm's domain that publishes what the protocol forbids and watches what follows."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from std_msgs.msg import Float64MultiArray, Int32, Int32MultiArray, String

        self.spec, self.n = spec, int(spec["n"])
        self.types = {"Twist": Twist, "F64": Float64MultiArray, "I32": Int32, "I32A": Int32MultiArray, "S": String}
        rclpy.init()
        self.node = Node("fault_peer")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        node = self.node
        self.session: int | None = None
        self.global_step = 0
        self.global_state = (0, 0)
        self.step = 0
        self.last_step_wall = time.monotonic()
        self.malformed = -1
        self.window: Window | None = None
        self.known: dict[int, str] = {}  # the graph's processes by pid, once it steps
        self.killed: set[str] = set()  # processes an attack killed on purpose
        node.create_subscription(String, "/altmarl/stats", self._on_stats, 100)
        node.create_subscription(Int32MultiArray, "/altmarl/global", self._on_global, 50)
        for robot in range(self.n):
            node.create_subscription(Int32MultiArray, f"/robot_{robot}/decision",
                                     lambda msg, r=robot: self._on_decision(r, msg), 10)
        self.pubs = {
            "global": node.create_publisher(Int32MultiArray, "/altmarl/global", 50),
            "samples": node.create_publisher(Float64MultiArray, "/altmarl/samples", 50),
            "request": node.create_publisher(Int32MultiArray, "/altmarl/sample_request", 50),
            "heartbeat": node.create_publisher(Int32, "/altmarl/heartbeat", 500),
            "stats": node.create_publisher(String, "/altmarl/stats", 100),
            "cmd0": node.create_publisher(Twist, "/robot_0/cmd_vel", 10),
            "cmd1": node.create_publisher(Twist, "/robot_1/cmd_vel", 10),
            "leader": node.create_publisher(Twist, "/leader/cmd_vel", 10),
        }

    # what the graph says --------------------------------------------------------------------
    def _on_stats(self, msg: Any) -> None:
        try:  # our own garbage arrives here too: only the coordinator's JSON (it has "requests") counts
            stats = json.loads(msg.data)
            if not isinstance(stats, dict) or "requests" not in stats:
                return
            step, k_eff, session = int(stats["step"]), int(stats["k_effective"]), int(stats["session"])
            malformed = int(stats.get("malformed", -1))
        except Exception:  # anything that is not the coordinator's JSON
            return
        if self.session is None:
            self.session = session
        if session != self.session or step <= self.step:
            return
        self.step, self.malformed, self.last_step_wall = step, malformed, time.monotonic()
        if self.window is not None:
            self.window.steps.append(step)
            self.window.k_eff.append(k_eff)
            self.window.malformed1 = malformed

    def _on_global(self, msg: Any) -> None:
        data = list(msg.data)
        if len(data) == 4 and data[1] != FORGED_STEP and data[0] == self.session:
            self.global_step, self.global_state = data[1], (data[2], data[3])

    def _on_decision(self, robot: int, msg: Any) -> None:
        window = self.window
        if window is None or len(msg.data) != 4:
            return
        step = int(msg.data[0])
        if step == FORGED_STEP:
            window.forged_decisions += 1
        elif step > window.step0:
            window.decided[robot] = window.decided.get(robot, 0) + 1

    # helpers --------------------------------------------------------------------------------
    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.executor.spin_once(timeout_sec=max(0.0, min(0.02, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def wait_steps(self, until: int, limit: float) -> bool:
        """Spin until the coordinator reports step `until`; False if it stalls for `limit` seconds."""
        while self.step < until:
            self.spin(0.05)
            if time.monotonic() - self.last_step_wall > limit:
                return False
            dead = self.dead_children()
            if dead:
                self.window_end(f"{', '.join(dead)} died")
                return False
        return True

    def children(self) -> dict[int, str]:
        named = {}
        for pid in descendants(int(self.spec["sim_pid"])):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
                match = next((re.search(r"__node:=(\S+)", a) for a in cmdline if "__node:=" in a), None)
                if match:
                    named[pid] = match.group(1)
        return named

    def dead_children(self) -> list[str]:
        """The graph's processes that exited (or are zombies), other than those an attack killed."""
        return [name for pid, name in self.known.items() if name not in self.killed and not _alive(pid)]

    def window_end(self, why: str) -> None:
        if self.window is not None and not self.window.end:
            self.window.end = why

    def log_offsets(self) -> dict[str, int]:
        found = {}
        for path in [*Path(self.spec["log_dir"]).glob("*.log"), Path(self.spec["stderr_file"])]:
            with contextlib.suppress(OSError):
                found[str(path)] = path.stat().st_size
        return found

    def twist(self, linear: float, angular: float) -> Any:
        msg = self.types["Twist"]()
        msg.linear.x, msg.angular.z = linear, angular
        return msg

    # attacks --------------------------------------------------------------------------------
    def attack(self, name: str) -> str:
        session, step = self.session or 1, max(self.global_step, self.step)
        i32a, f64, i32, text = self.types["I32A"], self.types["F64"], self.types["I32"], self.types["S"]
        if name == "forged-step":
            s_g, a_g = self.global_state
            for _ in range(3):
                self.pubs["global"].publish(i32a(data=[session, FORGED_STEP, s_g, a_g]))
                self.spin(0.05)
            return f"3 broadcasts [session {session}, step 2^31-1]"
        if name == "samples-malformed":
            bad = [[session, step + 1, 0.0], [session, step + 1, 1.0, math.nan, 0.0, 0.0],
                   [session, step + 1, 1.0, 2.5, 0.0, 0.0], [session, step + 1, 1e6, 1.0, 0.0, 0.0],
                   [session, step + 1, 2.0, 1.0, math.nan, math.inf]]
            for _ in range(4):
                for data in bad:
                    self.pubs["samples"].publish(f64(data=[float(v) for v in data]))
                self.spin(0.25)
            return "4 x 5 samples (length 3, zone NaN, zone 2.5, id 1e6, x NaN)"
        if name.startswith("request-"):
            count = int(float(name.split("-", 1)[1]))  # request-1e6: 10^6 ids
            data = array.array("i", [session, step + 1])
            data.extend(range(count))
            for _ in range(2):
                self.pubs["request"].publish(i32a(data=data))
                self.spin(0.3)
            return f"2 requests of {count} ids ({4 * len(data) / 2**20:.1f} MiB)"
        if name == "heartbeat-flood":
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < 3.0:
                for _ in range(200):
                    self.pubs["heartbeat"].publish(i32(data=(sent % self.n) if sent % 2 else 10**6))
                    sent += 1
                self.executor.spin_once(timeout_sec=0)
            return f"{sent} heartbeats in 3 s ({sent / (time.monotonic() - start):.0f}/s; half id 1e6, half odd ids)"
        if name.startswith("stats-"):
            payloads = {
                "stats-garbage": ["not json", "{", "[1, 2, 3]", '"a string"', "{\"step\": \"x\"}", "", "\x00\xff"],
                "stats-inf-step": ['{"step": Infinity, "global_state": 0, "global_action": 0, "k_effective": 3}',
                                   '{"step": 1e999, "global_state": 0, "global_action": 0, "k_effective": 3}'],
                "stats-deep-nesting": ["[" * 100_000 + "]" * 100_000],
                "stats-out-of-range": [json.dumps({"step": step + 1 + i, "global_state": 99, "global_action": -7,
                                                   "k_effective": 3, "time": 1.0, "session": session})
                                       for i in range(3)],
            }[name]
            for payload in payloads:
                self.pubs["stats"].publish(text(data=payload))
                self.spin(0.1 if len(payloads) > 3 else 0.5)
            return f"{len(payloads)} messages on /altmarl/stats"
        if name == "cmd-vel-nan":
            for _ in range(40):
                self.pubs["cmd0"].publish(self.twist(math.nan, 0.0))
                self.pubs["cmd1"].publish(self.twist(0.1, math.inf))
                self.pubs["leader"].publish(self.twist(math.nan, math.nan))
                self.spin(0.05)
            return "40 x NaN / inf Twist to robot_0, robot_1, leader"
        if name == "fleet-kill":
            victim = next((pid for pid, n in self.children().items() if n == "fleet_1"), None)
            if victim is None:
                return "no fleet_1 process found"
            self.killed.add("fleet_1")
            os.kill(victim, signal.SIGKILL)
            return f"SIGKILL fleet_1 (pid {victim}, robots 4..7)"
        raise ValueError(f"unknown attack {name}")

    def run(self) -> dict[str, Any]:
        spec = self.spec
        windows: list[Window] = []
        result: dict[str, Any] = {"windows": windows, "aborted": ""}
        if not self.wait_steps(int(spec["warmup"]), limit=float(spec["startup_timeout"])):
            result["aborted"] = f"no step {spec['warmup']} within {spec['startup_timeout']} s (at step {self.step})"
            return result
        self.known = self.children()
        for name in spec["attacks"]:
            window = Window(name, time.time(), self.step, self.log_offsets(), malformed0=self.malformed)
            self.window = window
            windows.append(window)
            window.note = self.attack(name.split("@")[0])  # heartbeat-flood@1: the flood, at speedup 1
            ok = self.wait_steps(window.step0 + int(spec["gap"]), limit=float(spec["stall_timeout"]))
            self.spin(0.3)  # the last step's decisions
            self.window = None
            if not ok:
                window.end = window.end or f"stalled at step {self.step}"
                result["aborted"] = f"after {name}: {window.end}"
                break
            self._dump(result)
        result["offsets_end"] = self.log_offsets()
        return result

    def _dump(self, result: dict[str, Any]) -> None:
        Path(self.spec["out"]).write_text(json.dumps(_jsonable(result)))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, Window):
        return dict(value.__dict__)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def peer_main(spec_json: str) -> int:
    """Entry of the peer process: run the attacks, write what it saw to spec['out']."""
    spec = json.loads(spec_json)
    peer = _Peer(spec)
    result = peer.run()
    result["offsets_end"] = result.get("offsets_end") or peer.log_offsets()
    peer._dump(result)
    with contextlib.suppress(Exception):
        peer.node.destroy_node()
    import rclpy

    rclpy.try_shutdown()
    return 0


def restart_main(spec_json: str) -> int:
    """A graph whose coordinator is SIGKILLed at its step `at`, left down for `down` s (robots must stop by
    themselves), then started again (a new session); writes steps and decisions per step to spec['out']."""
    from altmarl_ros.bringup.launch_plan import LaunchConfig
    from altmarl_ros.bringup.system import RunObserver, run_system

    spec = json.loads(spec_json)
    events: list[str] = []

    class CrashAndRestart(RunObserver):
        seen = 0

        def on_stats(self, record: Any, stats: dict, supervisor: Any) -> bool:
            self.seen += 1
            if self.seen == spec["at"] and not events:
                child = supervisor.child("coordinator")
                supervisor.kill("coordinator")
                child.process.wait()
                events.append(f"killed at monitor step {self.seen}")
                time.sleep(spec["down"])  # the robots hear nothing: each must stop by itself
                index = supervisor.children.index(child)
                supervisor.children[index] = supervisor._spawn(child.spec, child.log_path, "ab")  # as restart() does
                events.append("started again")
            return False

    config = LaunchConfig(n=spec["n"], k=spec["k"], policy=spec["policy"], world_config=spec["world"],
                          robots_per_process=spec["robots_per_process"], speedup=spec["speedup"],
                          decision_steps=spec["steps"], seed=0)
    run = run_system(config, spec["log_dir"], timeout=spec["timeout"], observer=CrashAndRestart())
    log: Any = run.log
    Path(spec["out"]).write_text(json.dumps({
        "events": events, "died": run.died, "steps": [r.step for r in log.steps],
        "sessions": [s.get("session") for s in [log.last_stats]],
        "decisions_per_step": {str(k): v for k, v in log.decisions_per_step.items()}}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "peer":
        sys.exit(peer_main(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "restart":
        sys.exit(restart_main(sys.argv[2]))
    print("usage: _faults.py peer|restart SPEC_JSON (started by fault_injection.py)", file=sys.stderr)
    sys.exit(2)
