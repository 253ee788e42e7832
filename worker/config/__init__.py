"""Configuration: ``config/`` loaded, checked and frozen into one versioned ``Config``."""

from worker.config.load import config_version, load_config
from worker.config.settings import Config, Destination, Feed, StorySettings, Watchlist

__all__ = [
    "Config",
    "Destination",
    "Feed",
    "StorySettings",
    "Watchlist",
    "config_version",
    "load_config",
]
