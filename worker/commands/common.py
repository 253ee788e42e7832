"""What every command shares: exit codes, turning our errors into one line, the app.

Every ``NewsAlertError`` becomes one line on stderr and an exit code below;
a traceback means a bug.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from worker.errors import ConfigError, FeedError, NewsAlertError, RedisUnavailable
from worker.service.app import App

RET_OK = 0
RET_ERROR = 1  # invalid config, failing examples, failed delivery test
RET_USAGE = 2  # click's own code for bad arguments
RET_REDIS = 3
RET_FEED = 4
RET_PENDING = 5

log = logging.getLogger("newsalert")
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    click.echo(f"newsalert: {message}", err=True)
    sys.exit(code)


def handled(fn: F) -> F:
    """Turn our errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for line in exc.lines():
                click.echo(line, err=True)
            sys.exit(RET_ERROR)
        except RedisUnavailable as exc:
            fail(str(exc), RET_REDIS)
        except FeedError as exc:
            fail(str(exc), RET_FEED)
        except NewsAlertError as exc:
            fail(str(exc), RET_ERROR)

    return wrapper  # type: ignore[return-value]


def warn(line: str) -> None:
    click.echo(line, err=True)


def app_of(ctx: click.Context) -> App:
    app: App = ctx.obj
    from worker.core.logs import redactor

    redactor().update(app.config().secrets())
    return app
