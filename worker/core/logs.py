"""Logging: one line per event, JSON when stdout is not a terminal, never a secret.

Context travels as ``extra={"feed": …, "watchlist": …, "destination": …,
"job": …}``. A filter replaces every known secret (the values interpolated
from ``${ENV}`` into destination URLs) before a line is written, whatever
library produced it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import ClassVar, TypeVar

from worker.core.redact import redact_forms, secret_forms

T = TypeVar("T")

CONTEXT = ("feed", "watchlist", "rule", "destination", "job", "reason", "path")


class RedactSecrets(logging.Filter):
    """Replace each known secret in a record's message and traceback (``worker.core.redact``)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.forms: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        self.secrets = list(dict.fromkeys(secrets))
        self.forms = secret_forms(self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.forms:
            message = redact_forms(record.getMessage(), self.forms)
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = redact_forms(text, self.forms)
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in CONTEXT if hasattr(record, k)})
        if record.exc_info:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Format a record as a readable line with its context appended."""

    COLOURS: ClassVar[dict[str, str]] = {
        "WARNING": "\033[33m",
        "ERROR": "\033[31m",
        "CRITICAL": "\033[31;1m",
    }

    def __init__(self, colour: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT if hasattr(record, k))
        if ctx:
            text = f"{text}  [{ctx}]"
        colour = self.COLOURS.get(record.levelname) if self.colour else None
        return f"{colour}{text}\033[0m" if colour else text


_redactor = RedactSecrets()


def setup_logging(level: str = "INFO", *, json_lines: bool | None = None) -> RedactSecrets:
    """Configure the root logger once; return the filter to feed secrets to."""
    # NEWSALERT_LOG_TTY: a child of `run` whose output `run` relays to a terminal.
    tty = sys.stderr.isatty() or os.environ.get("NEWSALERT_LOG_TTY") == "1"
    use_json = (not tty) if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter(colour=tty))
    handler.addFilter(_redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # These libraries log payloads or URLs (tokens included) below WARNING.
    for noisy in ("apprise", "rq.worker", "rq.queue", "rq.scheduler", "httpx", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return _redactor


def redactor() -> RedactSecrets:
    return _redactor


def progress(items: Sequence[T], what: str) -> Iterator[T]:
    """Yield ``items``, with a progress bar on stderr when it is a terminal and there are several."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=what, console=Console(stderr=True), transient=True)


@contextlib.contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` for a bar of ``total`` steps on stderr when it is a terminal."""
    if total < 2 or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)
