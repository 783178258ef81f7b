"""A Ray cluster of real hosts on one machine: every node in its own network namespace.

    bridge rb<tag> (host side 10.213.X.1/24)
      ├─ veth ─ netns raymn-<tag>-head  10.213.X.2  ray start --head (dashboard :8265, GCS :6379)
      ├─ veth ─ netns raymn-<tag>-w1    10.213.X.3  ray start --address 10.213.X.2:6379
      └─ veth ─ netns raymn-<tag>-w2    10.213.X.4  ...

Each node has its own address, loopback, ports and Ray temp dir, so Ray sees separate hosts that talk
over the bridge, as on a real cluster. The namespaces share the filesystem: a plain folder serves as
the storage every node sees (what NFS or a bucket is on a real cluster). Nothing is routed beyond the
bridge, and the host reaches the head's dashboard through its own address on the bridge.

A node is lost by SIGKILLing every process in its namespace and deleting the namespace
(`kill_node`), which is what a machine that loses power looks like to the rest of the cluster.
`teardown` (also run by the context manager when a test fails) kills every process in every
namespace of the cluster and deletes the namespaces, veths and bridge; names carry a random tag, so
leftovers of a run killed with SIGKILL never collide with a later run.

Needs root and iproute2 (`ip netns`); `unavailable_reason()` says why not, for pytest.skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's ray CLI and python
DASHBOARD_PORT = 8265
GCS_PORT = 6379


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable_reason() -> str | None:
    """Why a namespace cluster cannot run here (for pytest.skip), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if not (BIN / "ray").is_file():
        return f"no ray CLI beside {sys.executable} (ray[default])"
    probe = f"raymn-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.stdout.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> str:
    """A 10.213.X prefix that no interface or route of the host uses yet."""
    used = _ip("-o", "addr").stdout + _ip("route").stdout
    for _ in range(200):
        prefix = f"10.213.{secrets.randbelow(250) + 2}"
        if f"{prefix}." not in used:
            return prefix
    raise RuntimeError("no free 10.213.X.0/24 subnet for the test cluster")


@dataclass
class Node:
    name: str
    ns: str
    ip: str
    veth: str  # host end, on the bridge
    temp_dir: Path
    cpus: int
    alive: bool = False


class NetnsCluster:
    """Head (no CPUs: it runs the job driver and the trial drivers, never training) and worker nodes."""

    def __init__(self, root: Path, *, workers: int = 2, worker_cpus: int = 1, head_cpus: int = 0,
                 env: dict[str, str] | None = None) -> None:
        self.tag = secrets.token_hex(3)
        self.prefix = _free_subnet()
        self.bridge = f"rb{self.tag}"
        self.root = Path(tempfile.mkdtemp(prefix=f"mn{self.tag}", dir="/tmp"))  # short: socket path limit
        self.log_dir = Path(root) / f"cluster-{self.tag}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {}), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                    # a trusted test cluster on a private bridge; the README says how to run with tokens
                    "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("RAY_ADDRESS", None)
        specs = [("head", head_cpus)] + [(f"w{i}", worker_cpus) for i in range(1, workers + 1)]
        self.nodes = {name: Node(name, f"raymn-{self.tag}-{name}", f"{self.prefix}.{i + 2}", f"rv{self.tag}{i}",
                                 self.root / name, cpus)
                      for i, (name, cpus) in enumerate(specs)}
        self.clients: list[subprocess.Popen] = []  # processes started on the host (job submissions)

    # -- addresses

    @property
    def head(self) -> Node:
        return self.nodes["head"]

    @property
    def dashboard(self) -> str:
        return f"http://{self.head.ip}:{DASHBOARD_PORT}"

    def node_of_ip(self, ip: str) -> str | None:
        return next((n.name for n in self.nodes.values() if n.ip == ip), None)

    # -- lifecycle

    def __enter__(self) -> NetnsCluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def start(self, timeout: float = 400) -> None:
        started = time.perf_counter()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.prefix}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for node in self.nodes.values():
            self._plug(node)
        self._ray_start(self.head, ["--head", "--port", str(GCS_PORT), "--dashboard-host", self.head.ip,
                                    "--dashboard-port", str(DASHBOARD_PORT)])
        for node in self.nodes.values():
            if node is not self.head:
                self._ray_start(node, ["--address", f"{self.head.ip}:{GCS_PORT}"])
        self.wait_for_nodes(len(self.nodes), timeout=timeout - (time.perf_counter() - started))
        self.start_seconds = time.perf_counter() - started

    def _plug(self, node: Node) -> None:
        peer = f"rp{self.tag}{list(self.nodes).index(node.name)}"
        _ip("netns", "add", node.ns)
        _ip("link", "add", node.veth, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", node.ns)
        _ip("link", "set", node.veth, "master", self.bridge)
        _ip("link", "set", node.veth, "up")
        _ip("-n", node.ns, "addr", "add", f"{node.ip}/24", "dev", peer)
        _ip("-n", node.ns, "link", "set", peer, "up")
        _ip("-n", node.ns, "link", "set", "lo", "up")  # Ray's processes also talk over 127.0.0.1

    def ns_run(self, node: Node, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", node.ns, *cmd], env=self.env, **kwargs)

    def _ray_start(self, node: Node, args: list[str], attempts: int = 3) -> None:
        """`ray start` inside the node's namespace. Ray gives a raylet a fixed 30 s to register with the GCS,
        which a loaded 2-core machine can miss: then the namespace is emptied and the start tried again."""
        node.temp_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(BIN / "ray"), "start", *args, "--node-ip-address", node.ip, "--num-cpus", str(node.cpus),
               "--num-gpus", "0", "--temp-dir", str(node.temp_dir), "--object-store-memory", str(100 * 2**20),
               "--disable-usage-stats"]
        # Ray processes that look for "their" cluster (address "auto", e.g. Train's PlacementGroupCleaner)
        # scan every process on the machine and would find the GCS of other clusters on this host too;
        # on a real host there is one. RAY_ADDRESS points them at this cluster.
        env = {**self.env, "RAY_ADDRESS": f"{self.head.ip}:{GCS_PORT}"}
        log_path = self.log_dir / f"ray-start-{node.name}.log"
        for attempt in range(1, attempts + 1):
            with open(log_path, "a") as log:
                log.write(f"--- attempt {attempt}\n")
                log.flush()
                proc = subprocess.run(["ip", "netns", "exec", node.ns, *cmd], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=180)
            if proc.returncode == 0:
                node.alive = True
                return
            self._kill_all(node)
        raise RuntimeError(f"ray start on {node.name} failed {attempts} times:\n" + log_path.read_text()[-3000:])

    def alive_nodes(self) -> dict[str, float]:
        """{node ip: CPUs} of the nodes the head's GCS reports alive (through the dashboard's state API)."""
        with urllib.request.urlopen(f"{self.dashboard}/api/v0/nodes?limit=100", timeout=10) as response:
            body = json.load(response)
        rows = body["data"]["result"]["result"]
        return {r["node_ip"]: float((r.get("resources_total") or {}).get("CPU", 0)) for r in rows
                if r.get("state") == "ALIVE"}

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            try:
                alive = self.alive_nodes()
                if len(alive) >= count:
                    return
                last = alive
            except OSError as exc:  # the dashboard is still starting
                last = exc
            time.sleep(1)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout:.0f}s (last seen: {last})")

    def pids(self, node: Node) -> list[int]:
        out = _ip("netns", "pids", node.ns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_node(self, name: str) -> float:
        """Lose a node: SIGKILL every process in its namespace, then delete the namespace and its veth.
        Returns the time.time() of the kill."""
        node = self.nodes[name]
        killed_at = time.time()
        self._kill_all(node)
        _ip("netns", "del", node.ns, check=False)
        _ip("link", "del", node.veth, check=False)
        node.alive = False
        return killed_at

    def _kill_all(self, node: Node) -> None:
        for _ in range(50):  # processes may fork while we kill: repeat until the namespace is empty
            pids = self.pids(node)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def teardown(self) -> None:
        """Everything this cluster started: host-side clients, every namespace's processes, the
        namespaces, veths and bridge, and the Ray temp dirs. Safe to call twice."""
        for proc in self.clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for node in self.nodes.values():
            if _ip("netns", "pids", node.ns, check=False).returncode == 0:
                self._kill_all(node)
            _ip("netns", "del", node.ns, check=False)
            _ip("link", "del", node.veth, check=False)
            node.alive = False
        _ip("link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- jobs

    def submit(self, entrypoint: list[str], *, cwd: Path, log: Path, wait: bool = True,
               timeout: float = 600) -> subprocess.Popen:
        """`ray job submit --address http://<head>:8265 --working-dir . -- <entrypoint>` from the host.
        With wait, blocks until the job ends (the CLI follows the job and exits non-zero if it failed).
        A head whose job agent is still starting refuses the job ("No available agent"): then it is
        submitted again, a few seconds later."""
        cmd = [str(BIN / "ray"), "job", "submit", "--address", self.dashboard, "--working-dir", ".", "--",
               *entrypoint]
        for _ in range(12):
            offset = log.stat().st_size if log.exists() else 0
            with open(log, "a") as handle:
                proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.clients.append(proc)
            while proc.poll() is None and "Tailing logs until the job exits" not in log.read_text()[offset:]:
                time.sleep(0.5)
            if proc.poll() is None or "No available agent" not in log.read_text()[offset:]:
                break
            time.sleep(5)
        if wait:
            proc.wait(timeout=timeout)
        return proc
