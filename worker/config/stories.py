"""The ``stories: {group, window}`` setting: in feeds.yaml (the default) and in a watchlist."""

from __future__ import annotations

from pathlib import Path

from worker.config.schema import Checker, choice, parse_duration
from worker.config.settings import STORY_GROUPS, StorySettings
from worker.config.yamlfile import Map

#: Shortest story window: a copy a minute later must still fold.
MIN_WINDOW = 60.0


def load_stories(ld: Checker, path: Path, parent: Map, default: StorySettings) -> StorySettings:
    """Read ``parent``'s ``stories:`` mapping over ``default``; report problems with positions."""
    node = parent.get("stories")
    if node is None or ld.mapping(path, node, "stories", {"group", "window"}) is None:
        return default
    window = ld.convert(path, node, "window", parse_duration, default.window)
    if window < MIN_WINDOW:
        ld.error(path, ld.value_pos(node, "window"), "window must be at least 1m")
    group = ld.convert(path, node, "group", choice(STORY_GROUPS), default.group)
    return StorySettings(group=group, window=window)
