"""``newsalert run``: the poller and workers as one supervised process tree.

The supervisor starts (or connects to) Redis, then one ``newsalert poll``
and ``--workers`` ``newsalert work`` children that share it through
``REDIS_URL``. A child that dies is restarted with backoff (1 s doubling to
60 s) and the reason is logged. SIGTERM/SIGINT are passed on to the
children, which finish what they are doing; the supervisor waits up to
``SHUTDOWN_GRACE`` seconds (a dyno gets 30) before it kills what is left,
and stops an embedded Redis last.

It first runs ``newsalert check`` as a child and does not start on a config
that fails it (what a reload would refuse); the supervisor itself never loads
the config, so it stays small. Otherwise it exits non-zero only when it
cannot go on: Redis unreachable for longer than ``NEWSALERT_REDIS_GRACE``
seconds (default 300).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from worker.core.retry import backoff
from worker.service.app import App
from worker.service.roles import serve_metrics
from worker.service.status import Status

log = logging.getLogger("newsalert.run")

SHUTDOWN_GRACE = 25.0
RET_REDIS_LOST = 3


@dataclass
class Child:
    """A supervised child process."""

    name: str
    argv: list[str]
    spawn: Callable[[list[str], Mapping[str, str]], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: float = 0.0

    def tend(self, env: dict[str, str], now: float) -> None:
        """Notice a dead child and start it again when its backoff has passed."""
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.restarts = 0 if now - self.started > 60 else self.restarts + 1
            delay = backoff(1, self.restarts + 1, 60)
            log.error("%s exited with code %s; restarting in %ds", self.name, code, delay)
            self.proc, self.next_start = None, now + delay
        if self.proc is None and now >= self.next_start:
            self.proc = self.spawn(self.argv, env)
            self.started = now

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in time; killing it", self.name)
            self.proc.kill()
            self.proc.wait()


class RedisWatch:
    """Ping Redis every few seconds; say when it has been away longer than ``grace``."""

    def __init__(self, client: redis.Redis, grace: float, every: float = 5.0) -> None:
        self.client, self.grace, self.every = client, grace, every
        self.lost_since: float | None = None
        self.checked = 0.0

    def lost_for_good(self, now: float) -> bool:
        if now - self.checked <= self.every:
            return False
        self.checked = now
        try:
            self.client.ping()
        except redis.RedisError as exc:
            if self.lost_since is None:
                self.lost_since = now
                log.error("Redis is unreachable (%s); giving up after %.0fs", exc, self.grace)
            elif now - self.lost_since > self.grace:
                log.error("Redis unreachable for %.0fs: stopping", now - self.lost_since)
                return True
            return False
        if self.lost_since is not None:
            log.warning("Redis is reachable again")
        self.lost_since = None
        return False


def supervise(
    app: App,
    workers: int,
    extra_args: list[str],
    *,
    poller: bool = True,
    metrics_port: int | None = None,
) -> int:
    """Run the poller and workers as child processes until SIGTERM; return the exit code."""
    base = [sys.executable, "-m", "worker.cli", *extra_args]
    # From the very start: a SIGTERM while the config is checked or Redis starts (or is
    # adopted) must still stop the embedded Redis on the way out, not kill us outright.
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Refuse to start on a config that a reload would refuse. `check` runs in a child that
    # prints any path:line errors and exits: this process never loads config or rules.
    verdict = subprocess.run([*base, "check"], stdout=subprocess.DEVNULL, check=False)
    if verdict.returncode:
        return verdict.returncode
    _ = app.redis  # start the embedded Redis, if any, before the children need it
    env = dict(
        os.environ,
        REDIS_URL=app.redis_url or "",
        NEWSALERT_CONFIG=str(app.config_dir),
        NEWSALERT_CHILD="1",
    )
    env.pop("PORT", None)  # only this process serves metrics
    status = Status(app.redis, terminal=sys.stderr.isatty(), config_dir=app.config_dir)
    children = [Child("poller", [*base, "poll"], status.spawn)] if poller else []
    children += [Child(f"worker-{i + 1}", [*base, "work"], status.spawn) for i in range(workers)]
    serve_metrics(app, metrics_port, ("poller", "worker") if poller else ("worker",))
    watch = RedisWatch(app.redis, float(os.environ.get("NEWSALERT_REDIS_GRACE", "300")))
    log.info("newsalert run: %d children (%s)", len(children), ", ".join(c.name for c in children))
    code = 0
    status.start()
    while not stopping:
        now = time.monotonic()
        for child in children:
            child.tend(env, now)
        status.tick(now)
        if watch.lost_for_good(now):
            code, stopping = RET_REDIS_LOST, True
        time.sleep(0.2)
    log.info("shutting down: waiting up to %.0fs for children to finish", SHUTDOWN_GRACE)
    for child in children:
        child.stop()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for child in children:
        child.wait(deadline)
    status.stop()
    return code
