"""Fault injection for stories: kill -9 between grouping and delivery loses nothing.

A real worker-side process runs the match job's grouping step against the
test's Redis and reports when the story assignment is written; the test then
kills it with SIGKILL, before it queued any delivery. After the "restart"
(RQ re-runs a killed match job; a later copy of the story may come first),
the story's alert reaches the receiver exactly once. Fast: no RQ abandonment
wait, so it runs in the default set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deliverkit import run_jobs, texts, uninstall
from test_stories_e2e import WIRE_A, WIRE_B, _app, _store

from worker.core import keys
from worker.poll.identity import story_key
from worker.service.jobs import match_batch

_GROUP_THEN_WAIT = """
import json, sys, time
from worker import stories
from worker.core import keys
from worker.model import Item
from worker.service.app import App, install
app = App(sys.argv[1], redis_url=sys.argv[2], var_dir=sys.argv[3])
install(app)
items = [Item.from_dict(json.loads(app.redis.get(keys.item(sys.argv[4]))))]
stories.group(app.redis, app.config(), items)  # the match job's grouping step
print("grouped", flush=True)
time.sleep(60)  # killed here, before any delivery is queued
"""


@pytest.fixture(autouse=True)
def _cleanup(monkeypatch):
    monkeypatch.setenv("NEWSALERT_RETRY_INTERVALS", "0,0")
    yield
    uninstall()


@pytest.mark.parametrize("copy_first", [False, True])
def test_kill_9_between_grouping_and_delivery_sends_once(
    tmp_path, receiver, redis_client, redis_url, copy_first
):
    app = _app(tmp_path, redis_url, f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n")
    first = _store(app, 1, "wire-a", WIRE_A)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    args = [app.config().root, redis_url, str(tmp_path / "var2"), first]
    with subprocess.Popen(
        [sys.executable, "-c", _GROUP_THEN_WAIT, *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as child:  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline() == "grouped\n"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
    assert redis_client.exists(keys.story_of(story_key(WIRE_A["link"], first)))
    assert redis_client.llen(f"rq:queue:{keys.DELIVER_QUEUE}") == 0 and receiver.received == []
    version = app.config().version
    if copy_first:  # another outlet's copy is matched before the killed job runs again
        match_batch([_store(app, 2, "wire-b", WIRE_B)], version)
        run_jobs(app, wait=10)
    match_batch([first], version)  # RQ runs the killed match job again
    run_jobs(app, wait=10)
    if not copy_first:  # and a copy arriving afterwards adds nothing
        match_batch([_store(app, 2, "wire-b", WIRE_B)], version)
        run_jobs(app, wait=10)
    assert len(receiver.received) == 1, texts(receiver)
