"""newsalert: streaming news alerts from feeds, matched against YAML watchlists."""

from worker.errors import (
    ConfigError,
    DeliveryError,
    FeedError,
    NewsAlertError,
    QueryError,
    RedisUnavailable,
)
from worker.model import Alert, Highlight, Item, Match

__all__ = [
    "Alert",
    "ConfigError",
    "DeliveryError",
    "FeedError",
    "Highlight",
    "Item",
    "Match",
    "NewsAlertError",
    "QueryError",
    "RedisUnavailable",
]
