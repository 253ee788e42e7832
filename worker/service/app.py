"""What every newsalert process shares: its config, its Redis, its compiled rules.

``App`` keeps the last config that loaded cleanly. ``reload()`` picks up a
changed ``config/`` (compared by content hash) and, when the new files are
invalid, logs every ``path:line: message`` and keeps the old config live,
so a bad edit never takes a running process down.

The config and rule modules are imported on first use: ``run``'s supervisor
never loads a config (its children do), and so stays small.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from worker.core import keys
from worker.core.metrics import incr
from worker.core.store import EmbeddedRedis, connect, persistence_warnings, ping
from worker.errors import ConfigError, NewsAlertError

if TYPE_CHECKING:
    from worker.config import Config
    from worker.rules import Engine

log = logging.getLogger("newsalert.app")

#: Seconds between checks of config/ for changes (a bad or good edit is picked up within 10 s).
RELOAD_EVERY = 3.0


def default_config_dir() -> str:
    return os.environ.get("NEWSALERT_CONFIG", "config")


class App:
    """One process's view of newsalert."""

    def __init__(
        self,
        config_dir: str | os.PathLike[str] | None = None,
        redis_url: str | None = None,
        var_dir: str | os.PathLike[str] = "var",
    ) -> None:
        self.config_dir = Path(config_dir or default_config_dir())
        self.redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL")
        self.var_dir = Path(os.environ.get("NEWSALERT_VAR", var_dir))
        self.embedded: EmbeddedRedis | None = None
        #: Set by long-running modes: they take over an embedded server from a short command.
        self.lasting = False
        self._redis: redis.Redis | None = None
        self._config: Config | None = None
        self._engine: tuple[str, Engine] | None = None
        self._rejected: list[str] = []
        self._warned = os.environ.get("NEWSALERT_CHILD") == "1"  # the parent already warned
        self._checked = time.monotonic()
        self._reloading = threading.Lock()

    # -- config -----------------------------------------------------------
    def config(self) -> Config:
        """Return the live config, loading it on first use (raises ``ConfigError``)."""
        if self._config is None:
            from worker.config import load_config

            self._config = load_config(self.config_dir)
        return self._config

    def reload(self) -> bool:
        """Switch to a changed config if it is valid; return whether the version changed."""
        from worker.config import config_version, load_config

        current = self.config()
        try:
            if config_version(self.config_dir) == current.version:
                return False
            fresh = load_config(self.config_dir)
            self.check_examples(fresh)
        except (ConfigError, OSError) as exc:
            lines = exc.lines() if isinstance(exc, ConfigError) else [str(exc)]
            if lines != self._rejected:  # say it once per bad edit, not every few seconds
                for line in lines:
                    log.error("config rejected, keeping version %s: %s", current.version, line)
                self._count_reload_error()
            self._rejected = lines
            return False
        self._rejected = []
        self._config = fresh
        log.info("config switched from %s to %s", current.version, fresh.version)
        return True

    def maybe_reload(self) -> bool:
        """``reload`` at most once every ``RELOAD_EVERY`` seconds."""
        now = time.monotonic()
        # A worker process runs one thread per queue: one of them reloads, the others go on.
        if now - self._checked < RELOAD_EVERY or not self._reloading.acquire(blocking=False):
            return False
        try:
            self._checked = now
            return self.reload()
        finally:
            self._reloading.release()

    def _count_reload_error(self) -> None:
        with contextlib.suppress(redis.RedisError, NewsAlertError):  # the log line says it
            incr(self.redis, "config_reload_errors")

    def engine(self) -> Engine:
        """Return the rule engine compiled for the live config (compiled once per version)."""
        from worker.rules import Engine

        config = self.config()
        if self._engine is None or self._engine[0] != config.version:
            self._engine = (config.version, Engine(config.rule_specs()))
        return self._engine[1]

    def check_examples(self, config: Config) -> None:
        """Raise ``ConfigError`` for every watchlist example that does not behave."""
        from worker.config.examples import example_problems

        problems = example_problems(config)
        if problems:
            raise ConfigError(problems)

    # -- redis ------------------------------------------------------------
    @property
    def redis(self) -> redis.Redis:
        """Return the Redis client, starting the embedded server when no URL is set."""
        if self._redis is None:
            url = self.redis_url
            if not url:
                self.embedded = EmbeddedRedis(self.var_dir, lasting=self.lasting)
                url = self.embedded.start()
                self.redis_url = url
            self._redis = connect(url, os.environ.get("NEWSALERT_REDIS_SSL_CERT_REQS"))
            ping(self._redis)
            if self.embedded is None and not self._warned:
                for warning in persistence_warnings(self._redis):
                    log.warning(warning)
                self._warned = True
        return self._redis

    def publish_version(self) -> None:
        """Record the live config version in Redis, where every process can read it."""
        self.redis.set(keys.CONFIG_VERSION, self.config().version)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


_current: App | None = None


def install(app: App) -> None:
    """Make ``app`` the one that job functions in this process use."""
    global _current
    _current = app


def current_app(client: redis.Redis | None = None) -> App:
    """Return the installed app, or one built from the environment (for plain RQ workers)."""
    global _current
    if _current is None:
        _current = App()
        if client is not None:
            _current._redis = client
    return _current
