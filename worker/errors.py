"""Every error newsalert raises on purpose.

::

    NewsAlertError
     ├── ConfigError      a config file is invalid (carries path, line, column)
     ├── QueryError       a rule query cannot be parsed or compiled (carries column)
     ├── FeedError        a feed could not be fetched or parsed
     ├── DeliveryError    a destination did not accept an alert
     └── RedisUnavailable Redis could not be reached or started

The CLI turns each into one line and an exit code; anything else is a bug.
"""

from __future__ import annotations

from enum import StrEnum


class NewsAlertError(Exception):
    """Raised for every failure that a user, not a bug, caused."""


class ConfigError(NewsAlertError):
    """Raised when a config file is invalid; ``problems`` lists every one."""

    def __init__(self, problems: list[tuple[str, int, int, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Return one ``path:line:col: message`` per problem."""
        return [f"{path}:{line}:{col}: {msg}" for path, line, col, msg in self.problems]


class QueryError(NewsAlertError):
    """Raised when a rule query is malformed; ``column`` is 1-based within the query."""

    def __init__(self, message: str, column: int = 1) -> None:
        self.message = message
        self.column = column
        super().__init__(f"column {column}: {message}")


class FailureReason(StrEnum):
    """Why a fetch failed: a ``FeedError``'s ``reason``, a feed's ``last_reason``, a counter label."""

    ERROR = "error"  # none of the below
    URL = "url"  # not a usable URL
    SCHEME = "scheme"  # not http(s)
    PRIVATE_ADDRESS = "private_address"  # refused: loopback, private or link-local address
    DNS = "dns"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    REDIRECTS = "redirects"  # too many, or a loop
    HTTP = "http"  # an HTTP error status
    GONE = "gone"  # HTTP 410: the feed is disabled
    TOO_LARGE = "too_large"
    DECODE = "decode"  # a broken or unsupported Content-Encoding
    PARSE = "parse"  # not a feed, or nothing in it parsed
    PICK = "pick"  # ``add-feed --pick N``: the page has no N-th feed
    SOME = "some"  # ``try``: some of the config's feeds failed

    @classmethod
    def read(cls, value: str) -> FailureReason:
        """Return the reason named ``value``; ``ERROR`` for a name this version does not know."""
        try:
            return cls(value)
        except ValueError:
            return cls.ERROR


class FeedError(NewsAlertError):
    """Raised when a feed cannot be fetched or yields nothing parseable."""

    def __init__(
        self,
        message: str,
        *,
        reason: FailureReason = FailureReason.ERROR,
        status: int | None = None,
    ) -> None:
        self.reason = reason
        self.status = status
        super().__init__(message)


class DeliveryError(NewsAlertError):
    """Raised when a destination does not accept a notification."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RedisUnavailable(NewsAlertError):
    """Raised when Redis cannot be reached, or the embedded server cannot start."""
