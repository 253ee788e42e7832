"""Time one-shot commands on the embedded Redis against an external one.

Run: ``python bench/commands.py [--feeds 200] [--repeat 3] [--source DIR]``.

Each command runs as a fresh ``python -m worker.cli`` process, the way a user
runs it, wall time from start to exit, the best of ``--repeat`` runs interleaved between
the two modes (the machine is shared: the minimum is the command's own cost):

- ``stats``, ``replay``, ``test-destination`` (to a loopback JSON receiver)
  and ``poll --once`` over ``--feeds`` loopback feeds answering after 50 ms;
- ``run``'s shutdown: from SIGTERM to exit, once it has polled.

"embedded" runs with no ``REDIS_URL`` (the command starts, or finds, its
own server under ``var/``); "external" points ``REDIS_URL`` at a
redis-server this script starts with the same settings. The promise is
that embedded is within 0.3 s of external for each. ``--source`` runs
another checkout's code (e.g. ``/work/main``) to measure the "before".
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.core.store import DURABLE_REDIS_ARGS, redis_server_binary

LATENCY = 0.05
FEED = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>F{n}</title>'
    "<item><title>Story {n}</title><link>https://n.example.com/{n}</link></item>"
    "</channel></rss>"
)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(LATENCY)
        body = FEED.format(n=self.path.strip("/")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def write_config(root: Path, base: str, feeds: int) -> Path:
    config = root / "config"
    (config / "watchlists").mkdir(parents=True)
    lines = ["allow_private_networks: true", "defaults: {fulltext: never}", "fetch: {per_host: 50}"]
    lines += ["feeds:"] + [f"  - {{id: f{i}, url: '{base}/{i}'}}" for i in range(feeds)]
    (config / "feeds.yaml").write_text("\n".join(lines) + "\n")
    (config / "destinations.yaml").write_text(f"hook:\n  url: json://{base[7:]}/hook\n")
    (config / "watchlists" / "nk.yaml").write_text(
        'notify: [hook]\nrules:\n  - id: r\n    all: ["North Korean", Kursk]\n'
    )
    return config


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{argv[3:]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def run_shutdown(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Start ``run``, wait until its poller and worker are up, SIGTERM it; return seconds to exit."""
    log = cwd / "run.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*argv, "run"], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err
        )
    deadline = time.monotonic() + 120
    while not all(s in log.read_text() for s in ("poller started", "started on")):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"run did not poll: {log.read_text()[-500:]}")
        time.sleep(0.2)
    time.sleep(2.0)  # a poll round in hand
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return time.perf_counter() - t0


COMMANDS = {
    "stats": ["stats"],
    "replay": ["replay"],
    "test-destination": ["test-destination", "hook"],
    "poll --once": ["poll", "--once"],
}


def project(
    mode: str, args: argparse.Namespace, base: str, redis_url: str | None
) -> tuple[dict[str, str], Path]:
    """Return the environment and directory of one mode's project."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-commands-{mode}-"))
    config = write_config(work, base, args.feeds)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORT")}
    env.update(NEWSALERT_CONFIG=str(config), NEWSALERT_VAR=str(work / "var"))
    if args.source:
        env["PYTHONPATH"] = args.source
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env, work


def measure(args: argparse.Namespace, base: str, redis_url: str) -> dict[str, dict[str, float]]:
    """Return {mode: {command: best seconds}}, the modes interleaved run by run."""
    argv = [sys.executable, "-m", "worker.cli"]
    modes = {"external": project("external", args, base, redis_url)}
    modes["embedded"] = project("embedded", args, base, None)
    times: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    for _ in range(args.repeat):  # interleaved: load on a shared machine hits both alike
        for mode, (env, work) in modes.items():
            for name, extra in COMMANDS.items():
                times[mode].setdefault(name, []).append(timed([*argv, *extra], env, work))
    for mode, (env, work) in modes.items():
        times[mode]["run shutdown"] = [run_shutdown(argv, env, work)]
    return {m: {k: round(min(v), 3) for k, v in t.items()} for m, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--source", default="", help="Run another checkout's worker package.")
    args = parser.parse_args()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    server_dir = Path(tempfile.mkdtemp(prefix="bench-commands-redis-"))
    sock = server_dir / "redis.sock"
    server = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(server_dir),
         *DURABLE_REDIS_ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        results = measure(args, base, f"unix://{sock}")
        embedded, external = results["embedded"], results["external"]
    finally:
        server.terminate()
        server.wait()
        httpd.shutdown()
    extra = {k: round(embedded[k] - external[k], 3) for k in embedded}
    print(
        json.dumps(
            {
                "bench": "commands",
                "source": args.source or str(ROOT),
                "feeds": args.feeds,
                "embedded_s": embedded,
                "external_s": external,
                "embedded_minus_external_s": extra,
                "within_0_3_s": all(v <= 0.3 for v in extra.values()),
                "ratio": round(sum(embedded.values()) / sum(external.values()), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
