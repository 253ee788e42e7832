"""Options every command takes, typed before or after the command name."""

from __future__ import annotations

from pathlib import Path

import pytest
from configs import NK_WATCHLIST, write_config
from procs import newsalert


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "good",
        feeds="feeds:\n  - {id: a, url: 'https://news.example.com/rss'}\n",
        destinations="hook:\n  url: json://127.0.0.1:9/alerts\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "{good}", "check"),
        ("check", "--config", "{good}"),
        ("--config", "{empty}", "check", "--config", "{good}"),  # the later one wins
        ("--log-level", "DEBUG", "check", "--config", "{good}"),
        ("check", "--log-level", "WARNING", "--config", "{good}"),
    ],
)
def test_config_and_log_level_before_or_after_the_command(tmp_path, good, args):
    (tmp_path / "empty").mkdir()
    argv = [a.format(good=good, empty=tmp_path / "empty") for a in args]
    done = newsalert(tmp_path, *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 1 feeds, 1 watchlists")


def test_config_after_the_command_beats_the_environment(tmp_path, good):
    (tmp_path / "empty").mkdir()
    done = newsalert(
        tmp_path, "check", "--config", str(good), NEWSALERT_CONFIG=str(tmp_path / "empty")
    )
    assert done.returncode == 0, done.stderr
    wrong = newsalert(tmp_path, "check", NEWSALERT_CONFIG=str(tmp_path / "empty"))
    assert wrong.returncode == 1 and "feeds.yaml:1:1: file not found" in wrong.stderr
