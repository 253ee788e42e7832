"""``newsalert init``: the starter config it writes passes ``check``, and it never overwrites."""

from __future__ import annotations

import glob
import re
import tomllib
from pathlib import Path

import pytest
from procs import newsalert

import worker.config

ROOT = Path(__file__).resolve().parents[1]
SKELETON = Path(worker.config.__file__).parent / "skeleton"
SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
    "SMTP_USER": "desk",
    "SMTP_PASS": "s3cret",
}


def test_init_writes_a_config_that_check_accepts(tmp_path):
    done = newsalert(tmp_path, "init", "alerts")
    assert done.returncode == 0, done.stderr
    commands = [ln.strip() for ln in done.stdout.splitlines() if ln.startswith("  newsalert ")]
    assert [c.split()[1] for c in commands] == ["check", "try", "run"]
    assert all("--config alerts" in c for c in commands)
    files = sorted(
        p.relative_to(tmp_path / "alerts").as_posix() for p in (tmp_path / "alerts").rglob("*.yaml")
    )
    assert files == ["destinations.yaml", "feeds.yaml", "watchlists/north-korea-kursk.yaml"]
    checked = newsalert(tmp_path, "check", "--config", "alerts")
    assert checked.returncode == 0, checked.stderr
    assert re.match(r"ok: [3-9] feeds, 1 watchlists, 2 rules, 1 destinations", checked.stdout)
    feeds = (tmp_path / "alerts" / "feeds.yaml").read_text()
    assert feeds.startswith("# ") and "https://" in feeds  # commented, real feeds
    assert "127.0.0.1" not in feeds and "example.com/rss" not in feeds


def test_the_commented_destinations_pass_check_once_uncommented(tmp_path):
    assert newsalert(tmp_path, "init").returncode == 0  # no DIR: ./config
    path = tmp_path / "config" / "destinations.yaml"
    text = path.read_text()
    # A destination block is "# name:" then "#   key: value" lines; prose comments are not.
    block = re.compile(r"^# (?=[a-z][\w-]*:\s*$|  )", re.MULTILINE)
    uncommented = block.sub("", text)
    assert uncommented.count("\n") == text.count("\n")
    path.write_text(uncommented)
    watchlist = tmp_path / "config" / "watchlists" / "north-korea-kursk.yaml"
    watchlist.write_text(
        watchlist.read_text().replace(
            "notify: [terminal]", "notify: [terminal, ops-slack, analysts-email, webhook]"
        )
    )
    done = newsalert(tmp_path, "check", **SECRETS)
    assert done.returncode == 0, done.stderr
    assert "4 destinations" in done.stdout
    assert not any(v in done.stdout + done.stderr for v in SECRETS.values())


def test_init_refuses_to_overwrite(tmp_path):
    config = tmp_path / "config"
    (config / "watchlists").mkdir(parents=True)
    (config / "watchlists" / "mine.yaml").write_text("# my watchlist\n")
    done = newsalert(tmp_path, "init", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "mine.yaml already exists" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in config.rglob("*")) == [
        "mine.yaml",
        "watchlists",
    ]  # nothing written
    assert (config / "watchlists" / "mine.yaml").read_text() == "# my watchlist\n"

    again = newsalert(tmp_path, "init", "fresh")
    assert again.returncode == 0
    assert newsalert(tmp_path, "init", "fresh").returncode == 1  # its own result, too
    assert "next:" in again.stdout


def test_the_starter_ships_as_package_data():
    """pip installs only what pyproject's package-data names: every starter file must be."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["worker.config"]
    files = {p.relative_to(SKELETON.parent).as_posix() for p in SKELETON.rglob("*") if p.is_file()}
    # Expanded as setuptools does: a "*" does not cross a "/".
    shipped = {f for pat in patterns for f in glob.glob(pat, root_dir=SKELETON.parent)}
    assert files and files <= shipped, files - shipped


@pytest.mark.parametrize("name", sorted(p.name for p in SKELETON.rglob("*.yaml")))
def test_starter_files_are_commented(name):
    text = next(SKELETON.rglob(name)).read_text()
    assert text.startswith("# "), f"{name} should open with a comment saying what it is"
