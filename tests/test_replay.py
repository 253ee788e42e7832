"""``newsalert replay``: filters, and every dead letter still goes out at most once."""

from __future__ import annotations

import json
import time

import pytest
from deliverkit import dead_letters, make_app, payload, run_jobs, sent, texts, uninstall
from test_deliver_cli import newsalert

from worker.core import metrics
from worker.deliver import send as deliver_mod
from worker.model import Delivery


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    uninstall()


def _dests(receiver) -> str:
    return (
        f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n"
        f"other:\n  url: json://127.0.0.1:{receiver.port}/other\n  rate: 5/s\n"
    )


def test_replay_filters_by_destination_and_age_and_sends_each_once(
    tmp_path, receiver, redis_client, redis_url
):
    app = make_app(tmp_path, redis_url, _dests(receiver), notify="[hook, other]")
    config = app.config()
    recent, old, other = payload(1, "hook"), payload(2, "hook"), payload(3, "other")
    now = time.time()
    deliver_mod.dead_letter(redis_client, config, Delivery.from_dict(recent), "boom", now - 60)
    deliver_mod.dead_letter(redis_client, config, Delivery.from_dict(old), "boom", now - 3 * 3600)
    deliver_mod.dead_letter(redis_client, config, Delivery.from_dict(other), "boom", now - 60)

    result = newsalert(
        app.config_dir, redis_url, "replay", "--destination", "hook", "--since", "1h"
    )
    assert result.returncode == 0, result.stderr
    assert "1 dead letter(s) queued again" in result.stdout
    assert run_jobs(app) == 0
    assert len(receiver.received) == 1 and "soldier 1 captured" in texts(receiver)[0]
    assert sorted(json.loads(r)["delivery"] for r in dead_letters(redis_client)) == sorted(
        [old["delivery"], other["delivery"]]
    )

    result = newsalert(app.config_dir, redis_url, "replay")
    assert "2 dead letter(s) queued again" in result.stdout
    assert run_jobs(app) == 0
    assert sorted(r["path"] for r in receiver.received) == ["/alerts", "/alerts", "/other"]
    assert all(sent(redis_client, p) for p in (recent, old, other))
    assert dead_letters(redis_client) == []

    # A letter for an alert that was in fact delivered (dead-lettered by a worker whose
    # send succeeded, or replayed twice) does not go out again.
    for p in (recent, other):
        deliver_mod.dead_letter(redis_client, config, Delivery.from_dict(p), "boom")
    assert newsalert(app.config_dir, redis_url, "replay").returncode == 0
    assert run_jobs(app) == 0
    assert len(receiver.received) == 3
    assert metrics.read(redis_client, "deliveries")[("hook", "duplicate")] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since: bad duration"),
    (["--destination", "nowhere"], "unknown destination 'nowhere'"),
])  # fmt: skip
def test_replay_rejects_bad_arguments_in_one_line(
    tmp_path, receiver, redis_client, redis_url, args, message
):
    app = make_app(tmp_path, redis_url, _dests(receiver), notify="[hook]")
    result = newsalert(app.config_dir, redis_url, "replay", *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
