"""Real parts for fault-injection tests: our own Redis, feed server, receiver, processes, tallies.

Every fault test starts its own redis-server (AOF on, like a deployed one) so it
may stop or kill it without touching the session's Redis, and runs newsalert as
real subprocesses, each in its own process group (a "dyno") so a test can kill
one process, its parent, or the whole group. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis
from configs import write_config
from faultnet import STORY, FeedServer, Receipt, Receiver, story_items

__all__ = ["STORY", "FeedServer", "Receipt", "Receiver", "story_items"]  # re-exported for tests

import contextlib

from worker.core.store import DURABLE_REDIS_ARGS, redis_server_binary
from worker.service.timers import Timers

WATCHLIST = "notify: [hook]\nrules:\n  - id: kursk\n    all: [Kursk]\n"
#: RQ's clocks (``worker.service.timers``) for the short versions of the tests that wait
#: for a killed process's jobs or locks: seconds, not a minute. Their ``slow`` versions,
#: and every other fault test, run with production's (a 5 s job limit would change what
#: a 5 s Redis outage does to a running job).
FAST_TIMERS = "job_timeout=5,maintenance=1,stuck_after=3,scheduler_lock=3"


def pickup_limit(timers: Timers) -> float:
    """Return the seconds within which a killed worker's job must run again.

    Abandoned ``heartbeat_ttl`` after it started, seen by the next maintenance pass,
    5 s for the rest: 60 s with production's clocks, the README's "about a minute".
    """
    return timers.heartbeat_ttl + timers.maintenance + 5


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, step: float = 0.1
) -> float:
    """Wait until ``predicate()`` is true; return the seconds it took (AssertionError on timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Redis -------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own on a loopback port, data (AOF) in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # The settings README asks of an external Redis: AOF, fsync every second, no eviction.
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.root),
            *DURABLE_REDIS_ARGS,
            "--logfile",
            str(self.root / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.answers, 15, "our redis-server to answer")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: clean shutdown that flushes the AOF; SIGKILL: a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


# -- processes ---------------------------------------------------------------


def children_of() -> dict[int, list[int]]:
    """Return {ppid: [pids]} for every process, read from /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    tree, out, todo = children_of(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Proc:
    """One ``newsalert`` subprocess in a process group of its own, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("a") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", *args],
                env=env,
                cwd=log.parent,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def role_pids(self, role: str) -> list[int]:
        """Pids of the supervisor's direct ``newsalert … <role>`` children (``work``, ``poll``).

        Direct children only: RQ's scheduler is a fork of a worker with the same command line.
        """
        return [
            p
            for p in children_of().get(self.pid, [])
            if "worker.cli" in cmdline(p) and cmdline(p).split()[-1:] == [role] and alive(p)
        ]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        self.proc.wait(timeout=40)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        self.proc.wait(timeout=40)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM it and wait; kill the group if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            return -9

    def reap_group(self) -> None:
        """Kill whatever is left in the group (orphans included): test clean-up."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def newsalert_env(config: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, NEWSALERT_CONFIG=str(config), NEWSALERT_LOG_LEVEL="INFO", **extra)
    env.pop("PORT", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


# -- config and tallies --------------------------------------------------------


def feeds_config(urls: dict[str, str], interval: str = "1s", backfill: int = 0) -> str:
    lines = [
        "allow_private_networks: true",
        # Items link to n.example.com: full text would try to fetch beyond loopback.
        f"defaults: {{interval: {interval}, backfill: {backfill}, fulltext: never}}",
        # The fault tests count one alert per item, and their items ("Troops near Kursk,
        # report <feed> <n>") read as one story: group by link here. Grouping under faults
        # has its own test (test_faults_stories.py).
        "stories: {group: link}",
        "feeds:",
    ]
    for fid, url in urls.items():
        lines += [f"  - id: {fid}", f"    url: {url}"]
    return "\n".join(lines) + "\n"


def make_config(
    root: Path,
    feeds: FeedServer,
    names: Iterable[str],
    receiver: Receiver,
    interval: str = "1s",
    backfill: int = 0,
) -> Path:
    return write_config(
        root,
        feeds=feeds_config({n: feeds.url(n) for n in names}, interval, backfill),
        destinations=f"hook:\n  url: {receiver.url}\n",
        watchlists={"kursk": WATCHLIST},
    )


@dataclass
class Tally:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    uncommitted: int  # requests the destination saw while their sender was killed

    def __str__(self) -> str:
        return json.dumps(self.__dict__)


def tally(name: str, expected: Iterable[str], receiver: Receiver) -> Tally:
    """Count expected / delivered / lost / duplicated alerts, and print the line for the report."""
    want = set(expected)
    got = receiver.stories()
    t = Tally(
        len(want),
        len(set(got) & want),
        len(want - set(got)),
        len(got) - len(set(got)),
        len(receiver.stories(committed_only=False)) - len(got),
    )
    print(f"FAULT {name}: {t}")
    return t


class Rig:
    """One fault test's world: its Redis, feed server, receiver and newsalert processes."""

    def __init__(self, tmp: Path, own_redis: bool = True, fast_timers: bool = False) -> None:
        self.tmp = tmp
        self.timers_env = FAST_TIMERS if fast_timers else ""
        self.timers = Timers.parse(self.timers_env)
        self.redis = RedisServer(tmp / "redis") if own_redis else None
        if self.redis:
            self.redis.start()
        self.feeds = FeedServer()
        self.receiver = Receiver()
        self.procs: list[Proc] = []
        self.config_dir = tmp / "config"

    @property
    def url(self) -> str | None:
        return self.redis.url if self.redis else None

    def configure(self, names: Iterable[str], interval: str = "1s", backfill: int = 0) -> Path:
        return make_config(self.config_dir, self.feeds, names, self.receiver, interval, backfill)

    def spawn(self, *args: str, log: str = "run.log", **env: str) -> Proc:
        if self.timers_env:
            env.setdefault("NEWSALERT_RQ_TIMERS", self.timers_env)
        proc = Proc(list(args), newsalert_env(self.config_dir, self.url, **env), self.tmp / log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.reap_group()
        self.feeds.close()
        self.receiver.close()
        if self.redis:
            self.redis.stop(signal.SIGKILL)
