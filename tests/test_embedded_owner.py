"""Who stops the embedded redis-server: real ``newsalert`` processes, real kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from configs import NK_WATCHLIST, feeds_yaml, write_config
from procs import wait_for

from worker.core.store import EmbeddedRedis


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


class Project:
    """A project directory whose commands use the embedded Redis under ``var/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.var = root / "var"
        self.config = write_config(
            root / "config",
            feeds=feeds_yaml({}),
            destinations="hook:\n  url: json://127.0.0.1:9/alerts\n",
            watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
        )
        self.env = dict(os.environ, NEWSALERT_CONFIG=str(self.config), NEWSALERT_VAR=str(self.var))
        for name in ("REDIS_URL", "PORT"):
            self.env.pop(name, None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run"],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a group of its own, to kill -9 it whole
        )
        self.procs.append(proc)
        return proc

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def owner_pid(self) -> int | None:
        try:
            return int(json.loads((self.var / "redis.owner").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def server_pid(self) -> int:
        return int((self.var / "redis.pid").read_text())

    def answers(self) -> bool:
        sock = EmbeddedRedis(self.var).socket
        try:
            return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def owned_by(self, proc: subprocess.Popen[bytes]) -> bool:
        return self.answers() and self.owner_pid() == proc.pid

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if (self.var / "redis.pid").exists() and alive(self.server_pid()):
            os.kill(self.server_pid(), signal.SIGKILL)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=40)


def test_a_run_adopts_the_server_a_killed_run_left_and_stops_it(project: Project) -> None:
    first = project.run()
    wait_for(lambda: project.owned_by(first), 30, "the first run to start its Redis")
    server = project.server_pid()
    kill_group(first)  # the server sits in a session of its own: it survives
    assert alive(server) and project.answers()

    second = project.run()
    wait_for(lambda: project.owned_by(second), 30, "the second run to adopt the server")
    assert project.server_pid() == server  # reused, not a second server
    assert stop(second) == 0
    wait_for(lambda: not alive(server), 10, "the adopted server to stop")
    assert not project.answers()
    assert not (project.var / "redis.owner").exists()


def test_stats_never_stops_the_server_of_a_live_run(project: Project) -> None:
    run = project.run()
    wait_for(lambda: project.owned_by(run), 30, "run to start its Redis")
    server = project.server_pid()
    for args in (("stats",), ("replay",)):
        done = project.command(*args)
        assert done.returncode == 0, done.stderr
        assert alive(server) and project.answers(), f"{args[0]} stopped the run's Redis"
        assert project.owner_pid() == run.pid
    assert stop(run) == 0
    wait_for(lambda: not alive(server), 10, "run to stop its server at exit")


def test_a_command_cleans_up_the_server_of_a_killed_run(project: Project) -> None:
    run = project.run()
    wait_for(lambda: project.owned_by(run), 30, "run to start its Redis")
    server = project.server_pid()
    kill_group(run)
    done = project.command("stats")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not alive(server), 10, "stats to stop the orphaned server")


def test_a_run_takes_over_a_server_a_short_command_started(tmp_path: Path) -> None:
    short = EmbeddedRedis(tmp_path / "var")
    lasting = EmbeddedRedis(tmp_path / "var", lasting=True)
    try:
        short.start()
        assert short.owned
        lasting.start()
        assert lasting.owned and not short.owned
        short.stop()  # the short command leaves: the server stays for the lasting one
        assert redis.Redis.from_url(lasting.url).ping()
    finally:
        lasting.stop()
        short.stop()
    assert not lasting._answers()  # the lasting owner stopped it
