"""What ``newsalert run`` shows while it runs, so that a quiet first run does not look dead.

Decisions:

- The figures are the Redis counters the poller and workers already keep
  (``worker.core.metrics``) counted since this ``run`` started, and the queues'
  depth: feeds polled (and of those, failing now: their last fetch failed),
  new items, rule matches, alerts sent, jobs waiting. The supervisor never
  loads the config, and needs not: everything comes from Redis.
- On a terminal, a rich live line on stderr, redrawn every second. The
  children's output (logs, and alerts of a ``console://`` destination) is
  piped through this process and printed above the line, so the two never
  share a line; the children keep their readable, coloured log format.
- Once, when first polls have remembered what feeds already hold, it says in
  plain words that those stories are not alerted and that ``newsalert try``
  shows what the watchlists would match in them now.
- Off a terminal (a dyno, systemd, a pipe), the children write to the same
  stderr as before, and this process logs one summary line with the same
  figures every 5 minutes (``NEWSALERT_SUMMARY_EVERY`` seconds), and one at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis

from worker.core import keys
from worker.core.metrics import read
from worker.service.app import default_config_dir
from worker.service.queue import pending

log = logging.getLogger("newsalert.run")

#: Seconds between summary log lines when stderr is not a terminal (NEWSALERT_SUMMARY_EVERY).
SUMMARY_EVERY = 300.0
#: Seconds between redraws of the live line on a terminal.
REDRAW_EVERY = 1.0
_COUNTED = ("fetches", "items", "matches", "deliveries")
_FETCHED_OK = ("ok", "not_modified")

FIRST_POLL_NOTE = (
    "First poll: the {n} stories the feeds already hold are only remembered, not alerted; "
    "alerts come for stories published from now on. To see what your watchlists would "
    "match in the feeds right now, run: {try_command}"
)


@dataclass(frozen=True)
class Figures:
    """What happened since ``run`` started."""

    feeds_polled: int = 0
    feeds_failing: int = 0
    new_items: int = 0
    remembered: int = 0
    matches: int = 0
    alerts_sent: int = 0
    queued: int = 0

    def line(self) -> str:
        """Return the figures as one line of plain words."""
        return (
            f"{self.feeds_polled} feeds polled, {self.feeds_failing} failing · "
            f"{self.new_items} new items · {self.matches} matches · "
            f"{self.alerts_sent} alerts sent · queue {self.queued}"
        )


Counts = dict[str, dict[tuple[str, ...], int]]


def snapshot(client: redis.Redis) -> Counts:
    """Return the counters the figures are made of, as they are now."""
    return {name: read(client, name) for name in _COUNTED}


def figures(client: redis.Redis, since: Counts) -> Figures:
    """Return the figures from the counters' growth since ``since`` and the queues now."""
    now = snapshot(client)

    def grown(name: str, index: int | None = None, value: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for labels, n in now[name].items():
            delta = n - since[name].get(labels, 0)
            if delta > 0 and (index is None or labels[index : index + 1] == (value,)):
                key = labels[0] if labels else ""
                out[key] = out.get(key, 0) + delta
        return out

    polled = grown("fetches")
    with client.pipeline(transaction=False) as pipe:
        for feed in polled:
            pipe.hget(keys.feed_state(feed), "failures")
        failures = pipe.execute()
    return Figures(
        feeds_polled=len(polled),
        feeds_failing=sum(1 for f in failures if f and int(f) > 0),
        new_items=sum(grown("items", 1, "new").values()),
        remembered=sum(grown("items", 1, "first_poll").values()),
        matches=sum(grown("matches").values()),
        alerts_sent=sum(grown("deliveries", 1, "sent").values()),
        queued=pending(client),
    )


class Status:
    """The supervisor's view of the run: a live line on a terminal, summary lines off one."""

    def __init__(self, client: redis.Redis, *, terminal: bool, config_dir: Path) -> None:
        self.client = client
        given = config_dir.resolve() != Path(default_config_dir()).resolve()
        self.try_command = "newsalert try" + (f" --config {config_dir}" if given else "")
        self.terminal = terminal
        self.started = time.monotonic()
        self.summary_every = float(os.environ.get("NEWSALERT_SUMMARY_EVERY", SUMMARY_EVERY))
        self.since: Counts | None = None
        self.last = Figures()
        self._due = 0.0
        self._noted = False
        self._relays: list[threading.Thread] = []
        self._live: Any = None
        self._console: Any = None
        self._streams: list[tuple[logging.StreamHandler[Any], IO[str]]] = []
        if terminal:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._live = Live(
                self._render(), console=self._console, auto_refresh=False, transient=True
            )

    def spawn(self, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start a child; on a terminal, relay its output above the live line."""
        if not self.terminal:
            return subprocess.Popen(argv, env=env)
        # The child's stderr is a pipe now: keep its readable log format and unbuffered output.
        piped = {**env, "NEWSALERT_LOG_TTY": "1", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(argv, env=piped, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        relay = threading.Thread(target=self._relay, args=(proc.stdout,), daemon=True)
        relay.start()
        self._relays = [t for t in self._relays if t.is_alive()] + [relay]
        return proc

    def _relay(self, stream: IO[bytes]) -> None:
        from rich.text import Text

        for raw in iter(stream.readline, b""):
            text = Text.from_ansi(raw.decode("utf-8", "replace").rstrip("\n"))
            self._console.print(text, soft_wrap=True, highlight=False)
        stream.close()

    def start(self) -> None:
        """Take the counters' starting point and show the line (on a terminal)."""
        try:
            self.since = snapshot(self.client)
        except redis.RedisError:
            self.since = {name: {} for name in _COUNTED}
        if self._live is not None:
            self._live.start()  # sys.stderr now prints above the line: point our logs there
            self._streams = self._point_logs(sys.stderr)
            atexit.register(self._live.stop)  # a crash must not leave the cursor hidden

    @staticmethod
    def _point_logs(stream: IO[str]) -> list[tuple[logging.StreamHandler[Any], IO[str]]]:
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
        return [(h, h.setStream(stream)) for h in handlers]  # type: ignore[misc]

    def tick(self, now: float) -> None:
        """Redraw the line, or log the summary, when it is due (call it often)."""
        if now < self._due or self.since is None:
            return
        self._due = now + (REDRAW_EVERY if self.terminal else self.summary_every)
        try:
            self.last = figures(self.client, self.since)
        except redis.RedisError:
            return  # the supervisor reports Redis trouble; keep the last figures
        if self.terminal:
            if self.last.remembered and not self._noted:
                self._noted = True
                self._console.print(
                    FIRST_POLL_NOTE.format(n=self.last.remembered, try_command=self.try_command)
                )
            self._live.update(self._render(), refresh=True)
        elif now - self.started > 1:  # not the all-zero line at start
            log.info("status: %s", self.last.line())

    def _render(self) -> Any:
        from rich.text import Text

        up = int(time.monotonic() - self.started)
        line = Text.assemble(self.last.line(), (f" · up {up // 60}m{up % 60:02d}s", "dim"))
        line.no_wrap, line.overflow = True, "ellipsis"  # one line, whatever the width
        return line

    def stop(self) -> None:
        """Print what the children said last, then remove the live line."""
        for relay in self._relays:
            relay.join(timeout=2.0)
        if self._live is not None:
            for handler, stream in self._streams:
                handler.setStream(stream)
            self._live.stop()
        if not self.terminal and self.since is not None:
            with contextlib.suppress(redis.RedisError):
                log.info("status at exit: %s", figures(self.client, self.since).line())
