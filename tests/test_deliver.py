"""Delivery through apprise to real receivers on 127.0.0.1: email, webhook, outages, races, secrets."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from deliverkit import (
    dead_letters,
    make_app,
    make_scheduled_due,
    payload,
    run_jobs,
    sent,
    uninstall,
)

from worker.core import keys
from worker.deliver import send as deliver_mod
from worker.service.jobs import deliver
from worker.service.queue import enqueue_delivery
from worker.service.replay import replay_dead_letters
from worker.service.stats import collect


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("NEWSALERT_RETRY_INTERVALS", "0,0,0,0")
    yield
    uninstall()


def hook(receiver, name="hook", extra="", path="alerts"):
    return f"{name}:\n  url: json://127.0.0.1:{receiver.port}/{path}\n{extra}"


def test_email_has_subject_html_body_and_bold_highlight(
    tmp_path, smtp_server, redis_client, redis_url
):
    app = make_app(
        tmp_path,
        redis_url,
        notify="[desk]",
        destinations=(
            f"desk:\n  url: mailto://newsalert@127.0.0.1:{smtp_server.port}"
            "?to=desk@example.com&from=newsalert@example.com\n"
        ),
    )
    p = payload(1, "desk")
    enqueue_delivery(redis_client, p["delivery"], p)
    assert run_jobs(app) == 0
    assert len(smtp_server.messages) == 1
    msg = smtp_server.messages[0]
    assert "North Korean soldier 1 captured in Kursk" in msg["Subject"]
    assert msg["To"] == "desk@example.com"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None, "the e-mail must carry an HTML part"
    body = html.get_content()
    assert "<b>North Korean</b>" in body
    assert 'href="https://news.example.com/story/1"' in body
    assert sent(redis_client, p)


def test_webhook_receives_one_json_notification(tmp_path, receiver, redis_client, redis_url):
    app = make_app(tmp_path, redis_url, hook(receiver), notify="[hook]")
    p = payload(1, "hook")
    enqueue_delivery(redis_client, p["delivery"], p)
    enqueue_delivery(redis_client, p["delivery"], p)  # enqueued twice: still one delivery
    assert run_jobs(app) == 0
    assert len(receiver.received) == 1
    assert receiver.received[0]["path"] == "/alerts"
    doc = receiver.received[0]["body"]
    assert "North Korean soldier 1" in doc["title"]
    assert "https://news.example.com/story/1" in doc["message"]
    assert "nk-in-kursk" in doc["message"]  # says why it fired


@pytest.mark.parametrize("extra", ["", "  rate: 10/s\n"], ids=["direct", "outbox"])
def test_outage_then_recovery_delivers_exactly_once(
    extra, tmp_path, receiver, redis_client, redis_url
):
    app = make_app(tmp_path, redis_url, hook(receiver, extra=extra), notify="[hook]")
    receiver.fail_next = [500, 500, 500]
    p = payload(1, "hook")
    enqueue_delivery(redis_client, p["delivery"], p)
    assert run_jobs(app) == 0
    assert receiver.fail_next == [], "all three failures must have been answered"
    assert len(receiver.received) == 1
    assert sent(redis_client, p)
    assert dead_letters(redis_client) == []
    figures = collect(app)["destinations"]["hook"]
    assert figures["sent"] == 1 and figures["consecutive_failures"] == 0 and not figures["failing"]


@pytest.mark.parametrize("extra", ["", "  rate: 10/s\n"], ids=["direct", "outbox"])
def test_down_past_retries_dead_letters_then_replay_sends_once(
    extra, tmp_path, receiver, redis_client, redis_url, caplog
):
    dests = hook(receiver, extra=extra + "  on_failure: ops\n") + hook(
        receiver, name="ops", path="ops"
    )
    app = make_app(tmp_path, redis_url, dests, notify="[hook]")
    receiver.fail_next = [503] * 5  # 1 try + 4 retries, all refused
    p = payload(1, "hook")
    with caplog.at_level(logging.INFO):
        enqueue_delivery(redis_client, p["delivery"], p)
        assert run_jobs(app) == 0
    letters = [json.loads(raw) for raw in dead_letters(redis_client)]
    assert [letter["delivery"] for letter in letters] == [p["delivery"]]
    assert "503" in letters[0]["reason"]
    assert not sent(redis_client, p)
    # The failing destination shows in stats, in a log line and at on_failure (once).
    figures = collect(app)["destinations"]["hook"]
    assert figures["failing"] and figures["dead_letters"] == 1 and "503" in figures["last_error"]
    assert any("keeps failing" in r.getMessage() for r in caplog.records)
    notices = [r for r in receiver.received if r["path"] == "/ops"]
    assert len(notices) == 1 and "hook" in notices[0]["body"]["title"]
    assert [r for r in receiver.received if r["path"] == "/alerts"] == []

    assert replay_dead_letters(app, destination="hook") == 1
    assert replay_dead_letters(app, destination="hook") == 0, "a replayed letter leaves the list"
    assert run_jobs(app) == 0
    assert len([r for r in receiver.received if r["path"] == "/alerts"]) == 1
    assert sent(redis_client, p)
    # The same delivery queued again (a replayed copy, a re-match) is not sent twice.
    enqueue_delivery(redis_client, p["delivery"], p)
    assert run_jobs(app) == 0
    assert len([r for r in receiver.received if r["path"] == "/alerts"]) == 1
    assert collect(app)["destinations"]["hook"]["failing"] is False


@pytest.mark.parametrize(
    "extra", ["", "  rate: 10/s\n  digest_after: 3\n"], ids=["direct", "outbox"]
)
def test_two_workers_racing_on_one_alert_deliver_once(
    extra, tmp_path, receiver, redis_client, redis_url
):
    app = make_app(tmp_path, redis_url, hook(receiver, extra=extra), notify="[hook]")
    p = payload(1, "hook")
    barrier = threading.Barrier(4)
    results: list[str] = []

    def racer() -> None:
        barrier.wait()
        results.append(deliver(dict(p)))

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    if extra:  # through the outbox: one racer queued it, the others found it queued or sent
        assert results.count("queued") >= 1, results
        assert set(results) <= {"queued", "duplicate"}, results
    else:  # one sent it; a racer that found the claim held scheduled a recheck of its own
        assert results.count("sent") == 1, results
        assert set(results) <= {"sent", "in flight", "duplicate"}, results
        # (rechecks made in the same second share a job id: one job stands for them)
        in_flight = results.count("in flight")
        assert min(in_flight, 1) <= make_scheduled_due(redis_client) <= in_flight
    # Run what the racers left behind (a flush, or the rechecks) now: none may send again.
    assert run_jobs(app) == 0
    assert len(receiver.received) == 1, results
    assert sent(redis_client, p)
    assert dead_letters(redis_client) == []


def test_secret_in_url_never_reaches_logs_errors_or_stats(
    tmp_path, receiver, redis_client, redis_url, caplog, capfd, monkeypatch
):
    secret = "tok3n-S3CRET-4f9a2b"
    monkeypatch.setenv("HOOK_TOKEN", secret)
    app = make_app(
        tmp_path,
        redis_url,
        notify="[hook]",
        destinations=(
            f"hook:\n  url: json://127.0.0.1:{receiver.port}/hook/${{HOOK_TOKEN}}?key=${{HOOK_TOKEN}}\n"
        ),
    )
    assert secret in app.config().destinations["hook"].url
    receiver.fail_next = [500] * 5
    caplog.set_level(logging.DEBUG)
    p = payload(1, "hook")
    enqueue_delivery(redis_client, p["delivery"], p)
    assert run_jobs(app) == 0
    assert dead_letters(redis_client), "the alert must have failed for good"
    replay_dead_letters(app)
    assert run_jobs(app) == 0
    assert len(receiver.received) == 1 and secret in receiver.received[0]["path"]  # it was used
    out, err = capfd.readouterr()
    assert caplog.records, "the test must have captured log records"
    for where, text in [
        ("logs", caplog.text),
        ("stdout", out),
        ("stderr", err),
        ("stats", json.dumps(collect(app))),
        ("redis", repr([redis_client.dump(k) for k in redis_client.keys("newsalert:*")])),
    ]:
        assert secret not in text, where


def test_send_raises_with_the_reason_for_404(tmp_path, receiver, redis_url):
    from worker.errors import DeliveryError

    app = make_app(tmp_path, redis_url, hook(receiver), notify="[hook]")
    receiver.fail_next = [404]
    with pytest.raises(DeliveryError, match="404"):
        deliver_mod.send(app.config().destinations["hook"], "t", "b", "text")
    assert receiver.received == []


def test_claim_many_reports_each_state(redis_client):
    deliver_mod.claim_many(redis_client, ["a"])
    redis_client.set(keys.ledger("b"), "sent")
    token, states = deliver_mod.claim_many(redis_client, ["a", "b", "c"])
    assert states == {"a": "busy", "b": "sent", "c": "claimed"}
    deliver_mod.release(redis_client, ["a", "c"], token)
    assert redis_client.get(keys.ledger("a")) is not None, (
        "another worker's claim is not ours to release"
    )
    assert redis_client.get(keys.ledger("c")) is None


def test_claim_left_by_a_dead_worker_is_sent_after_it_expires(
    tmp_path, receiver, redis_client, redis_url, monkeypatch
):
    # Retries that add up to less than the claim's lifetime must not strand the alert.
    monkeypatch.setenv("NEWSALERT_RETRY_INTERVALS", "0")
    app = make_app(
        tmp_path, redis_url, f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n", "[hook]"
    )
    p = payload(1, "hook")
    redis_client.set(keys.ledger(p["delivery"]), "claim:dead-worker", ex=2)
    enqueue_delivery(redis_client, p["delivery"], p)
    try:
        assert run_jobs(app, wait=20) == 0
    finally:
        uninstall()
    assert len(receiver.received) == 1
    assert sent(redis_client, p)


@pytest.mark.parametrize("extra", ["", "  rate: 1/h\n"], ids=["direct", "outbox"])
def test_removing_a_watchlist_cancels_its_waiting_alerts(
    extra, tmp_path, receiver, redis_client, redis_url, caplog
):
    from worker.config import load_config

    dests = f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n{extra}"
    app = make_app(tmp_path, redis_url, dests, "[hook]")
    first, second = payload(1, "hook"), payload(2, "hook")
    enqueue_delivery(redis_client, first["delivery"], first)
    enqueue_delivery(redis_client, second["delivery"], second)
    try:
        if extra:  # the first goes out, the second waits for the next token
            assert run_jobs(app, wait=5) == 0
            assert len(receiver.received) == 1
            third = payload(3, "hook")
            enqueue_delivery(redis_client, third["delivery"], third)
            assert run_jobs(app, wait=5) == 0
        (tmp_path / "config" / "watchlists" / "nk.yaml").write_text(
            "notify: [hook]\nrules:\n  - id: other\n    all: [unrelated]\n"
        )
        (tmp_path / "config" / "watchlists" / "nk.yaml").rename(
            tmp_path / "config" / "watchlists" / "other.yaml"
        )
        app._config = load_config(tmp_path / "config")
        with caplog.at_level(logging.INFO, logger="newsalert"):
            if extra:
                from worker.deliver.outbox import flush
                from worker.service.queue import enqueue_flush

                flush(redis_client, app.config(), "hook", enqueue_flush=enqueue_flush)
            else:
                assert run_jobs(app, wait=5) == 0
    finally:
        uninstall()
    assert len(receiver.received) == (1 if extra else 0)
    assert "watchlist nk was removed: alert cancelled" in caplog.text


def test_a_job_queued_under_the_old_module_path_still_runs(
    tmp_path, receiver, redis_client, redis_url
):
    """RQ stores ``worker.jobs.deliver`` in jobs queued before the stage packages."""
    from worker.service.queue import queue
    from worker.service.timers import Timers

    app = make_app(tmp_path, redis_url, notify="[hook]", destinations=hook(receiver))
    p = payload(1, "hook")
    queue(redis_client, keys.DELIVER_QUEUE).enqueue(
        "worker.jobs.deliver",
        p,
        job_id=f"deliver-{p['delivery']}",
        job_timeout=Timers().job_timeout,
    )
    assert run_jobs(app, wait=10) == 0
    assert sent(redis_client, p)
    assert len(receiver.received) == 1
