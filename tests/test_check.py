"""``newsalert check``: every kind of config error as ``path:line:col: message``, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, write_config

FEEDS = """\
feeds:
  - id: world
    url: https://feeds.example.com/world.xml
    tags: [world]
"""
DESTS = "hook:\n  url: json://127.0.0.1:9/alerts\n"
QUERY_WATCHLIST = """\
notify: [hook]
rules:
  - id: q
    query: '{query}'
"""


def check(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SLACK_URL"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--config", str(config), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def make(
    tmp_path: Path,
    *,
    feeds: str = FEEDS,
    destinations: str = DESTS,
    watchlist: str = NK_WATCHLIST.format(notify="[hook]"),
) -> Path:
    return write_config(
        tmp_path / "config", feeds=feeds, destinations=destinations, watchlists={"nk": watchlist}
    )


def test_valid_config_passes(tmp_path):
    result = check(make(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 1 feeds, 1 watchlists, 1 rules")


def test_shipped_config_passes():
    result = check(Path(__file__).resolve().parents[1] / "config")
    assert result.returncode == 0, result.stderr


BROKEN = [
    # (file, text replacing it, expected file suffix, line, message part)
    ("feeds", FEEDS.replace("tags: [world]", "tags: [world"), "feeds.yaml", 5, "YAML syntax error"),
    ("feeds", FEEDS + "    colour: blue\n", "feeds.yaml", 5, "unknown key 'colour'"),
    (
        "feeds",
        FEEDS.replace("    url: https://feeds.example.com/world.xml\n", ""),
        "feeds.yaml",
        2,
        "missing required key 'url'",
    ),
    ("feeds", FEEDS.replace("tags: [world]", "interval: soon"), "feeds.yaml", 4, "bad duration"),
    ("feeds", "fetch:\n  max_bytes: lots\n" + FEEDS, "feeds.yaml", 2, "bad size"),
    ("feeds", "fetch:\n  per_hostt: 2\n" + FEEDS, "feeds.yaml", 2, "unknown key 'per_hostt'"),
    ("watchlist", QUERY_WATCHLIST.format(query="(North Korean"), "nk.yaml", 4, "parenthes"),
    ("watchlist", QUERY_WATCHLIST.format(query="/(unclosed/"), "nk.yaml", 4, "regex"),
    (
        "watchlist",
        NK_WATCHLIST.format(notify="[hook, pager]"),
        "nk.yaml",
        2,
        "unknown destination 'pager'",
    ),
    (
        "watchlist",
        NK_WATCHLIST.format(notify="[hook]").replace("rules:", "rulez:"),
        "nk.yaml",
        5,
        "unknown key 'rulez'",
    ),
    (
        "watchlist",
        NK_WATCHLIST.format(notify="[hook]").replace(
            "South Korean team wins", "North Korean soldier seen"
        ),
        "nk.yaml",
        12,
        "example should not match",
    ),
    (
        "destinations",
        "hook:\n  url: json://127.0.0.1:9/alerts\n  rate: 5/0s\n",
        "destinations.yaml",
        3,
        "bad rate",
    ),
    (
        "watchlist",
        QUERY_WATCHLIST.format(query="Kursk").replace("id: q", "id: 'troops, Kursk'"),
        "nk.yaml",
        3,
        "bad rule id",
    ),
    (
        "destinations",
        "hook:\n  url: ${SLACK_URL}\n",
        "destinations.yaml",
        2,
        "environment variable SLACK_URL is not set",
    ),
]


@pytest.mark.parametrize("which, text, filename, line, message", BROKEN, ids=[b[4] for b in BROKEN])
def test_broken_config_reports_file_and_line(tmp_path, which, text, filename, line, message):
    config = make(
        tmp_path,
        **{
            {"feeds": "feeds", "watchlist": "watchlist", "destinations": "destinations"}[
                which
            ]: text
        },
    )
    result = check(config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if message in ln]
    assert errors, result.stderr
    path, lineno, col, _ = errors[0].split(":", 3)
    assert path.endswith(filename)
    assert int(lineno) == line, errors[0]
    assert int(col) >= 1


def test_query_error_points_at_the_column(tmp_path):
    result = check(make(tmp_path, watchlist=QUERY_WATCHLIST.format(query="Kursk NEAR/x troops")))
    assert result.returncode == 1
    line = next(ln for ln in result.stderr.splitlines() if "nk.yaml" in ln)
    _, lineno, col, msg = line.split(":", 3)
    assert int(lineno) == 4
    # The query starts after "    query: '" (12 chars); the error is at NEAR (7th char of the query).
    assert int(col) == 12 + 7, line
    assert "NEAR" in msg


def test_missing_secret_is_named_not_shown(tmp_path):
    result = check(make(tmp_path, destinations="hook:\n  url: json://${HOOK_HOST}/x\n"))
    assert result.returncode == 1
    assert "HOOK_HOST" in result.stderr


def test_secret_value_never_printed(tmp_path):
    dests = "hook:\n  url: json://127.0.0.1:9/${SLACK_URL}\n  rate: often\n"
    result = check(make(tmp_path, destinations=dests), SLACK_URL="s3cr3t-t0ken-value")
    assert result.returncode == 1
    assert "bad rate" in result.stderr
    assert "s3cr3t-t0ken-value" not in result.stderr + result.stdout


def test_fetch_limits_are_read_from_feeds_yaml(tmp_path):
    from worker.config import load_config
    from worker.poll.fetch import FetchLimits

    feeds = "fetch:\n  total_timeout: 1m\n  max_bytes: 2MiB\n  per_host: 2\n" + FEEDS
    config = load_config(make(tmp_path, feeds=feeds))
    limits = FetchLimits(**config.fetch)
    assert (limits.total_timeout, limits.max_bytes, limits.per_host) == (60.0, 2 * 1024**2, 2)
    assert limits.connect_timeout == FetchLimits().connect_timeout
