"""Hosts on a virtual Wi-Fi network: Linux network namespaces on one bridge, for tests and benchmarks.

Why: robots and the base station are separate computers in the field; DDS must
discover across real interfaces (no loopback shortcut), and a radio link can be
cut or degraded for one host while the others go on. `NetnsLab` builds that on
one machine and always takes it down again:

* a private namespace `altmarl-<pid>-br` holding a bridge (the access point),
  multicast snooping off so DDS discovery multicast is flooded to every port;
* one namespace per host, `altmarl-<pid>-<host>`, with `lo` up and one veth
  `eth0` (address 10.213.0.<i>/24, a multicast route) whose peer `p<i>` is a
  bridge port. Nothing is created in the caller's namespace, so no address of
  this machine's own network is touched and parallel runs (other pids) do not
  collide;
* `link_down(host)` / `link_up(host)` set the host's bridge port down / up (the
  host keeps its address; its packets go nowhere, as out of radio range);
* `impair(host, delay_ms, jitter_ms, loss, seed)`: this kernel has no netem
  (nor fq/EDT, gact or act_bpf), so packets of the host's `eth0` (both ways) go
  through an iptables NFQUEUE rule to a netfilter queue, and a small process
  in that namespace (`nfqueue_delayer`, below) holds each one in the kernel
  queue until its verdict `delay_ms` (+ a seeded uniform jitter) later, or
  drops it with probability `loss` (seeded). Needs `iptables` and a kernel with
  nfnetlink_queue; `impairment_unavailable()` says why not. Measure it with
  `udp_probe` before trusting numbers made under it;
* on exit (normal, exception, KeyboardInterrupt or SIGTERM) every process the
  lab started is killed and every namespace deleted (which removes its veths
  and the bridge); labs left by a killed run (their pid is gone) are removed
  by the next one.

Needs root and iproute2 (`ip`); `unavailable()` says why it cannot run.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

PREFIX = "altmarl-"  # namespaces are named altmarl-<pid>-<lab>-<host>
_LABS = 0  # labs made by this process
SUBNET = "10.213.0"  # /24 inside the lab's own namespaces only
MULTICAST = "224.0.0.0/4"
HOST_IF = "eth0"
SCRIPT = str(Path(__file__).resolve())


def _run(args: Sequence[str], check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


def unavailable() -> str | None:
    """Why a lab cannot be built here (None if it can): not root, no `ip`, or namespaces not permitted."""
    if sys.platform != "linux":
        return f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "network namespaces need root (euid is not 0)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    name = f"{PREFIX}{os.getpid()}-probe"
    try:
        made = _run(["ip", "netns", "add", name], check=False)
        if made.returncode != 0:
            return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
        veth = _run(["ip", "-n", name, "link", "add", "a0", "type", "veth", "peer", "name", "b0"], check=False)
        if veth.returncode != 0:
            return f"veth pairs cannot be created here: {veth.stderr.strip()}"
        bridge = _run(["ip", "-n", name, "link", "add", "br0", "type", "bridge"], check=False)
        if bridge.returncode != 0:
            return f"bridges cannot be created here: {bridge.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", name], check=False)
    return None


def impairment_unavailable() -> str | None:
    """Why `impair` cannot work here (None if it can): no `iptables`, or no netfilter queue in the kernel."""
    if shutil.which("iptables") is None:
        return "`iptables` is not installed (impairment uses its NFQUEUE target; apt-get install iptables)"
    config = Path("/proc/config.gz")
    if config.exists():
        import gzip

        text = gzip.decompress(config.read_bytes()).decode(errors="replace")
        if not re.search(r"^CONFIG_NETFILTER_NETLINK_QUEUE=[ym]", text, re.M):
            return "the kernel has no nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)"
        if not re.search(r"^CONFIG_NETFILTER_XT_TARGET_NFQUEUE=[ym]", text, re.M):
            return "the kernel has no NFQUEUE target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE)"
    return None


def netem_unavailable() -> str | None:
    """Why tc netem is not used here (None if this kernel has it)."""
    if shutil.which("tc") is None:
        return "tc is not installed"
    name = f"{PREFIX}{os.getpid()}-netem"
    try:
        _run(["ip", "netns", "add", name])
        probe = _run(["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                      "1ms"], check=False)
        return None if probe.returncode == 0 else f"tc netem: {probe.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", name], check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names() -> list[str]:
    listing = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _kill_in_netns(name: str) -> None:
    """SIGKILL every process still inside namespace `name` (only labs' own namespaces are passed here)."""
    pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def cleanup_stale() -> list[str]:
    """Delete the namespaces of labs whose process is gone (a crashed or killed run); returns their names."""
    removed = []
    for name in _netns_names():
        match = re.match(rf"^{re.escape(PREFIX)}(\d+)-", name)
        if match and not _pid_alive(int(match.group(1))):
            _kill_in_netns(name)
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class Host:
    name: str  # the lab's name for it ("base", "fleet0", ...)
    netns: str  # the namespace
    ip: str  # its address on the bridge
    port: str  # its veth's peer on the bridge (in the bridge namespace)


class NetnsLab:
    """A bridge and one namespace per host; a context manager that always removes everything it made."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if len(set(hosts)) != len(hosts) or not hosts:
            raise ValueError(f"host names must be distinct and non-empty: {list(hosts)}")
        if len(hosts) > 250:
            raise ValueError("at most 250 hosts on one /24")
        for host in hosts:
            if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", host) or host == "br":
                raise ValueError(f"host name {host!r}: lower-case letters and digits, at most 16, not 'br'")
        global _LABS
        tag = f"{PREFIX}{os.getpid()}-{_LABS}"  # unique per process and per lab within it
        _LABS += 1
        self.bridge_ns = f"{tag}-br"
        self.hosts = {name: Host(name, f"{tag}-{name}", f"{SUBNET}.{i + 1}", f"p{i}") for i, name in enumerate(hosts)}
        self.processes: list[subprocess.Popen] = []
        self._created: list[str] = []
        self._delayers: dict[str, subprocess.Popen] = {}
        self._old_sigterm: Any = None
        self.tmp: Path | None = None  # the delayers' logs and packet counts

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> NetnsLab:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        cleanup_stale()
        if _signal_allowed():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _build(self) -> None:
        self._add_netns(self.bridge_ns)
        br = ["ip", "-n", self.bridge_ns]
        _run([*br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0"])
        _run([*br, "link", "set", "br0", "up"])
        for host in self.hosts.values():
            self._add_netns(host.netns)
            _run([*br, "link", "add", host.port, "type", "veth", "peer", "name", HOST_IF, "netns", host.netns])
            _run([*br, "link", "set", host.port, "master", "br0", "up"])
            inside = ["ip", "-n", host.netns]
            _run([*inside, "link", "set", "lo", "up"])
            _run([*inside, "addr", "add", f"{host.ip}/24", "dev", HOST_IF])
            _run([*inside, "link", "set", HOST_IF, "up"])
            _run([*inside, "route", "add", MULTICAST, "dev", HOST_IF])

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._created.append(name)

    def close(self) -> None:
        """Kill what the lab started, delete its namespaces (and with them the veths and the bridge)."""
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + 5.0
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                process.wait(timeout=5.0)
        for name in reversed(self._created):
            _kill_in_netns(name)
            _run(["ip", "netns", "del", name], check=False)
        self._created.clear()
        self._delayers.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self._old_sigterm is not None and _signal_allowed():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    def leftovers(self) -> list[str]:
        """Namespaces of this lab that still exist (empty after close)."""
        mine = {self.bridge_ns, *(h.netns for h in self.hosts.values())}
        return [name for name in _netns_names() if name in mine]

    # --- running things inside a host -------------------------------------------------------------
    def command(self, host: str, args: Sequence[str]) -> list[str]:
        """`args` run inside the host's namespace."""
        return ["ip", "netns", "exec", self.hosts[host].netns, *args]

    def run(self, host: str, args: Sequence[str], timeout: float = 30.0,
            check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(host, args), capture_output=True, text=True, timeout=timeout, check=check)

    def popen(self, host: str, args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start a process inside the host (own process group); the lab kills it on close."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(self.command(host, args), start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    # --- the link -----------------------------------------------------------------------------------
    def link_down(self, host: str) -> None:
        """Cut the host's radio link: its bridge port goes down (the host's eth0 loses carrier)."""
        _run(["ip", "-n", self.bridge_ns, "link", "set", self.hosts[host].port, "down"])

    def link_up(self, host: str) -> None:
        _run(["ip", "-n", self.bridge_ns, "link", "set", self.hosts[host].port, "up"])

    def link_state(self, host: str) -> str:
        """'up' if the host's eth0 has carrier (its bridge port is up), else 'down'."""
        shown = json.loads(_run(["ip", "-j", "-n", self.hosts[host].netns, "link", "show", HOST_IF]).stdout)[0]
        return "up" if "LOWER_UP" in shown["flags"] else "down"

    # --- impairment ------------------------------------------------------------------------------------
    def impair(self, host: str, delay_ms: float = 0.0, jitter_ms: float = 0.0, loss: float = 0.0, seed: int = 0,
               exempt: Sequence[str] = ()) -> None:
        """Delay (ms, + uniform jitter) and drop (probability) every packet crossing the host's eth0, both
        ways, except those to or from the `exempt` addresses. Raises RuntimeError if it cannot."""
        reason = impairment_unavailable()
        if reason:
            raise RuntimeError(reason)
        if not (0.0 <= loss < 1.0 and delay_ms >= 0 and jitter_ms >= 0):
            raise ValueError(f"bad impairment delay={delay_ms} jitter={jitter_ms} loss={loss}")
        self.clear_impairment(host)
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.bridge_ns[:-3]}-"))
        with open(self.tmp / f"nfqueue-{host}.log", "wb") as log:
            ready = self.popen(host, [sys.executable, SCRIPT, "nfqueue", "--queue", "0", "--delay-ms", str(delay_ms),
                                      "--jitter-ms", str(jitter_ms), "--loss", str(loss), "--seed", str(seed),
                                      "--counts", str(self.tmp / f"nfqueue-{host}.json")],
                               stdout=subprocess.PIPE, stderr=log, text=True)
        line = _read_line(ready, 10.0)
        if line.strip() != "bound":
            raise RuntimeError(f"the netfilter-queue delayer did not start in {host}: {line!r}")
        for chain, direction in (("OUTPUT", "-o"), ("INPUT", "-i")):
            peer = "-d" if chain == "OUTPUT" else "-s"
            rules = [[chain, direction, HOST_IF, peer, address, "-j", "ACCEPT"] for address in exempt]
            rules.append([chain, direction, HOST_IF, "-j", "NFQUEUE", "--queue-num", "0"])
            for rule in rules:
                applied = self.run(host, ["iptables", "-w", "-A", *rule], check=False)
                if applied.returncode != 0:
                    self.run(host, ["iptables", "-w", "-F", chain], check=False)
                    raise RuntimeError(f"iptables refused {rule} in {host}: {applied.stderr.strip()}")
        self._delayers[host] = ready

    def clear_impairment(self, host: str) -> None:
        """Remove the host's queue rules first (packets flow again), then stop its delayer."""
        if host not in self._delayers:
            return
        for chain in ("OUTPUT", "INPUT"):  # the lab's own namespace: its filter chains hold only these rules
            self.run(host, ["iptables", "-w", "-F", chain], check=False)
        process = self._delayers.pop(host)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def delayer_alive(self, host: str) -> bool:
        return host in self._delayers and self._delayers[host].poll() is None

    def impairment_counts(self, host: str) -> dict[str, int]:
        """Packets the host's delayer took, dropped, and netlink receive errors (each drops packets)."""
        try:
            return json.loads((self.tmp / f"nfqueue-{host}.json").read_text())
        except (OSError, ValueError, TypeError):
            return {}

    # --- measuring the link ---------------------------------------------------------------------------
    def udp_probe(self, src: str, dst: str, count: int = 50, interval: float = 0.02,
                  timeout: float = 1.5) -> dict[str, Any]:
        """Round trips of `count` UDP datagrams from `src` to an echo server on `dst`: loss and RTT (ms)."""
        port = 47000 + os.getpid() % 1000
        server = self.popen(dst, [sys.executable, SCRIPT, "echo", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
        try:
            line = _read_line(server, 10.0)
            if line.strip() != "listening":
                raise RuntimeError(f"the echo server did not start on {dst}: {line!r}")
            out = self.run(src, [sys.executable, SCRIPT, "probe", "--to", self.hosts[dst].ip, "--port", str(port),
                                 "--count", str(count), "--interval", str(interval), "--timeout", str(timeout)],
                           timeout=count * interval + timeout + 30)
            return json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=5.0)


def _signal_allowed() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _sigterm_to_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through NetnsLab.__exit__, which removes everything


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return f"(nothing within {timeout} s; exit code {process.poll()})"
    return process.stdout.readline()


# --- the netfilter-queue delayer (runs inside a host namespace) ------------------------------------------
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _nfq_message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def nfqueue_delayer(queue: int, delay_ms: float, jitter_ms: float, loss: float, seed: int,
                    counts_path: str | None = None) -> None:
    """Hold each packet of netfilter queue `queue` for delay (+ uniform jitter) ms, or drop it (seeded).

    The packets stay in the kernel; only their ids come up (copy mode META), and a verdict releases them.
    """
    import random

    rng = random.Random(seed)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    seq = 0

    def request(msg: int, attrs: bytes) -> None:
        nonlocal seq
        seq += 1
        sock.send(_nfq_message(msg, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR and struct.unpack_from("=i", reply, 16)[0] != 0:
            raise OSError(-struct.unpack_from("=i", reply, 16)[0], f"nfqueue config message {msg} refused")

    bind = struct.pack("=BxH", NFQNL_CFG_CMD_BIND, socket.htons(socket.AF_INET))
    request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_CMD, bind))
    request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
    request(NFQNL_MSG_CONFIG, _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)))
    print("bound", flush=True)
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    pending: list[tuple[float, int]] = []  # (release time, packet id)
    counts = {"packets": 0, "dropped": 0, "recv_errors": 0}
    written = 0.0

    def write_counts() -> None:
        if counts_path:
            Path(counts_path + ".tmp").write_text(json.dumps(counts))
            os.replace(counts_path + ".tmp", counts_path)

    def verdict(packet_id: int, kind: int) -> None:
        sock.send(_nfq_message(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", kind, packet_id))))

    while not stop:
        now = time.monotonic()
        if now - written >= 1.0:
            write_counts()
            written = now
        while pending and pending[0][0] <= now:
            verdict(heapq.heappop(pending)[1], NF_ACCEPT)
        wait = max(0.0, pending[0][0] - now) if pending else 0.5
        try:
            readable, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if not readable:
            continue
        try:
            data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError as exc:  # ENOBUFS: the kernel dropped messages; the packets were dropped with them
            counts["recv_errors"] += 1
            print(f"recv: {exc}", file=sys.stderr, flush=True)
            continue
        arrived = time.monotonic()
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                packet_id = _packet_id(data, offset + 20, offset + length)
                if packet_id is not None:
                    counts["packets"] += 1
                    if loss and rng.random() < loss:
                        counts["dropped"] += 1
                        verdict(packet_id, NF_DROP)
                    else:
                        hold = delay_ms + (rng.uniform(0.0, jitter_ms) if jitter_ms else 0.0)
                        heapq.heappush(pending, (arrived + hold / 1000.0, packet_id))
            offset += (length + 3) & ~3
    for _, packet_id in pending:  # let the held packets go before the rules are gone
        verdict(packet_id, NF_ACCEPT)
    write_counts()


def _packet_id(data: bytes, start: int, end: int) -> int | None:
    offset = start
    while offset + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return None
        if kind & 0x7FFF == NFQA_PACKET_HDR:
            return struct.unpack_from("!I", data, offset + 4)[0]
        offset += (length + 3) & ~3
    return None


# --- UDP echo and probe (to measure a link) --------------------------------------------------------------
def echo_server(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print("listening", flush=True)
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def udp_probe(address: str, port: int, count: int, interval: float, timeout: float) -> dict[str, Any]:
    """Send `count` numbered datagrams `interval` s apart; RTTs of the echoes back within `timeout`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent: dict[int, float] = {}
    rtts: dict[int, float] = {}
    next_send = time.monotonic()
    index = 0
    end = None
    while True:
        now = time.monotonic()
        if index < count and now >= next_send:
            sent[index] = now
            sock.sendto(struct.pack("!I", index) + b"x" * 60, (address, port))
            index += 1
            next_send += interval
            if index == count:
                end = now + timeout
        if end is not None and (now >= end or len(rtts) == count):
            break
        wait = max(0.0, min(next_send - now if index < count else 0.05, 0.05))
        readable, _, _ = select.select([sock], [], [], wait)
        if readable:
            data = sock.recv(2048)
            seen = struct.unpack_from("!I", data)[0]
            if seen in sent and seen not in rtts:
                rtts[seen] = (time.monotonic() - sent[seen]) * 1000.0
    values = sorted(rtts.values())
    return {"sent": count, "received": len(values), "loss": 1 - len(values) / count,
            "rtt_ms_min": values[0] if values else None, "rtt_ms_median": values[len(values) // 2] if values else None,
            "rtt_ms_max": values[-1] if values else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="helpers run inside a lab's namespaces")
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("nfqueue")
    q.add_argument("--queue", type=int, default=0)
    q.add_argument("--delay-ms", type=float, default=0.0)
    q.add_argument("--jitter-ms", type=float, default=0.0)
    q.add_argument("--loss", type=float, default=0.0)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--counts", default=None, help="JSON file for the packet counts (rewritten every second)")
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, required=True)
    p = sub.add_parser("probe")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=1.5)
    sub.add_parser("cleanup", help="remove the namespaces of labs whose process is gone")
    args = parser.parse_args(argv)
    if args.what == "cleanup":
        print("\n".join(cleanup_stale()) or "nothing to remove")
    elif args.what == "nfqueue":
        nfqueue_delayer(args.queue, args.delay_ms, args.jitter_ms, args.loss, args.seed, args.counts)
    elif args.what == "echo":
        echo_server(args.port)
    else:
        print(json.dumps(udp_probe(args.to, args.port, args.count, args.interval, args.timeout)))


if __name__ == "__main__":
    main()
