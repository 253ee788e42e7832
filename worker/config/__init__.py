"""Configuration: ``config/`` loaded, checked and frozen into one versioned ``Config``."""

from worker.config.load import config_version, load_config
from worker.config.settings import Config, Destination, Feed, Watchlist

__all__ = ["Config", "Destination", "Feed", "Watchlist", "config_version", "load_config"]
