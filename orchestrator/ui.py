"""`python -m orchestrator.ui`: the MLflow UI for the sweeps in a results folder, on this machine only.

Runs `mlflow server` on results/mlflow.db (the default tracking store, see orchestrator/tracking/runs.py)
with one worker and MLflow's background job runner off (about 490 MiB instead of 1.1 GB,
../shared/notes/STACK.md). It binds to 127.0.0.1 unless told otherwise: the MLflow UI has no login of
its own, so a non-loopback address is refused unless --allow-remote is given, and then it should sit
behind a proxy that authenticates (or an SSH tunnel: `ssh -L 5000:127.0.0.1:5000 host`).
The server runs as this process's child, in a process group of its own: SIGINT (Ctrl-C) and SIGTERM to this
process's PID (the one a shell's `$!` gives) stop the whole group, uvicorn included. "ready" is said only once
the server answers /health. Without --verbose the server's own output (one access line per request, MLflow's
`--host 0.0.0.0` advice, deprecation warnings) goes to a log file named only if the server fails.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator.tracking.runs import ARTIFACTS_DIR, DB_FILE


def build_parser() -> argparse.ArgumentParser:
    from orchestrator.base.shell import prog

    parser = argparse.ArgumentParser(
        prog=prog("orchestrator.ui"),
        description="Serve the MLflow UI (and REST API) for the sweeps logged in a results folder's "
                    f"{DB_FILE}. Binds to 127.0.0.1 by default; Ctrl-C stops it.")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help=f"results folder holding {DB_FILE} (the sweeps' results_dir; default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only); a non-loopback "
                             "address also needs --allow-remote")
    parser.add_argument("--port", type=int, default=5000, help="TCP port to listen on (default: %(default)s)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host such as 0.0.0.0. The MLflow UI has no authentication: "
                             "put it behind a reverse proxy that authenticates users (or use an SSH tunnel "
                             "to 127.0.0.1 instead)")
    parser.add_argument("--allowed-hosts", metavar="HOSTS",
                        help="comma-separated Host headers MLflow accepts (passed to `mlflow server "
                             "--allowed-hosts`; MLflow's default is localhost and private addresses), e.g. the "
                             "name your proxy serves it under")
    parser.add_argument("--verbose", action="store_true",
                        help="show the server's own output (access log, MLflow's and uvicorn's messages)")
    return parser


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def port_problem(host: str, port: int) -> str | None:
    """Why `port` cannot be listened on at `host` (None if it can): checked before MLflow's slow start."""
    if not 0 < port < 65536:
        return f"--port {port} is not a TCP port (1-65535)"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"--host {host!r} does not resolve: {exc}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; pick another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def server_command(results: Path, host: str, port: int, allowed_hosts: str | None = None,
                   verbose: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", f"sqlite:///{results / DB_FILE}",
           "--default-artifact-root", str(results / ARTIFACTS_DIR),
           "--host", host, "--port", str(port), "--workers", "1"]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    if not verbose:  # one log line per request otherwise (117 for two page loads)
        cmd += ["--uvicorn-opts", "--no-access-log"]
    return cmd


def missing_piece() -> str | None:
    """What this interpreter lacks to serve the UI (checked before anything starts), or None."""
    for module in ("mlflow", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            from orchestrator.base.shell import python_command

            return (f"{module} is not importable by {sys.executable}; install the project into this interpreter's "
                    f"environment ({python_command()} -m pip install -e . from the checkout)")
    return None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(cmd: list[str], env: dict[str, str], url: str, log: Path | None, start_s: float = 300.0) -> int:
    """Run the server as a child in its own process group; say ready once it answers /health; forward SIGINT
    and SIGTERM to the group; 2 if it dies or never answers, naming why, else its exit status."""
    out = open(log, "w") if log else None  # noqa: SIM115 - the child writes it until it ends
    child = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                             start_new_session=True)

    stopped: list[int] = []

    def kill(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        kill(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    try:
        deadline = time.monotonic() + start_s
        while not healthy(url):
            if stopped:  # asked to stop before it was ready
                child.wait()
                return 128 + stopped[0]
            if child.poll() is not None or time.monotonic() > deadline:
                what = f"exited with status {child.returncode}" if child.poll() is not None \
                    else f"did not answer {url}/health in {start_s:.0f} s"
                tail = log.read_text()[-2000:] if log and log.is_file() else ""
                print(f"error: the MLflow server {what}" + (f"; its log ({log}) ends:\n{tail}" if tail else ""),
                      file=sys.stderr)
                return 2
            time.sleep(0.5)
        print(f"ready: {url} (Ctrl-C or kill {os.getpid()} stops it)", flush=True)
        code = child.wait()
        return 128 + stopped[0] if stopped else code  # 130 after Ctrl-C, as a shell reports it
    finally:
        kill(signal.SIGTERM)  # whatever is left of the group (uvicorn), however this process ends
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill(signal.SIGKILL)
        if out:
            out.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = Path(args.results).expanduser().resolve()
    db = results / DB_FILE
    if not db.is_file():
        from orchestrator.base.shell import python_command

        print(f"error: no MLflow database at {db}. Run a sweep first ({python_command()} -m orchestrator.sweep "
              "--config FILE), or point --results at the folder that holds its mlflow.db (the sweep's results_dir).",
              file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        if not args.allow_remote:
            print(f"error: --host {args.host} would expose the MLflow UI, which has no authentication, beyond "
                  "this machine. Use the default 127.0.0.1 (with an SSH tunnel for remote access), or pass "
                  "--allow-remote and put it behind a reverse proxy that authenticates users.", file=sys.stderr)
            return 2
        print(f"warning: serving the MLflow UI on {args.host}:{args.port}, reachable from other machines and "
              "without authentication: anyone who can connect can read and change every run. Put it behind "
              "a reverse proxy that authenticates users (or a firewall), and set --allowed-hosts to the name "
              "it is served under.", file=sys.stderr)
    problem = missing_piece() or port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    # MLflow's job runner (huey consumers) is not needed to browse runs and doubles the memory.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    log = None
    if not args.verbose:
        env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")  # Starlette's, in the server's log anyway
        # A new file of our own (mkstemp: 0600, never an existing name): a fixed name in a shared /tmp could be
        # another user's file or a symlink planted there, which open(..., "w") would follow.
        fd, name = tempfile.mkstemp(prefix=f"orchestrator-ui-{args.port}-", suffix=".log")
        os.close(fd)
        log = Path(name)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"MLflow UI for {db}: starting at http://{shown}:{args.port} (15-25 s)", flush=True)
    cmd = server_command(results, args.host, args.port, args.allowed_hosts, verbose=args.verbose)
    return serve(cmd, env, f"http://{shown}:{args.port}", log)


if __name__ == "__main__":
    from orchestrator.cli import run_main

    run_main(main)
