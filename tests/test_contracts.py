"""The typed contracts that cross Redis: ``Delivery`` payloads and their older dict form."""

from __future__ import annotations

import json

import pytest
from deliverkit import make_app, payload, run_jobs, sent, texts, uninstall

from worker.model import Alert, Delivery
from worker.service.queue import enqueue_delivery


def test_delivery_round_trips_through_json() -> None:
    job = Delivery.from_dict(payload(1, "hook", urgent=True))
    again = Delivery.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job and again.urgent and again.alert.rules == ("nk-in-kursk",)


def test_rules_are_a_tuple_not_a_joined_string() -> None:
    data = payload(1, "hook")["alert"]
    alert = Alert.from_dict({**data, "rules": ["troops.kursk", "nk-in-kursk"]})
    assert alert.rules == ("troops.kursk", "nk-in-kursk")
    assert alert.to_dict()["rules"] == ["troops.kursk", "nk-in-kursk"]
    assert "rule" not in alert.to_dict()
    with pytest.raises(TypeError, match="tuple"):
        Alert(alert.watchlist, alert.watchlist_name, "a, b", alert.item)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "rules"),
    [
        ("nk-in-kursk", ("nk-in-kursk",)),
        ("nk-in-kursk, nk-prisoner", ("nk-in-kursk", "nk-prisoner")),
    ],
)
def test_payloads_of_the_older_form_still_load(old: str, rules: tuple[str, ...]) -> None:
    """Payloads queued before ``rules`` existed carry ``rule``: the ids joined by ", "."""
    data = payload(1, "hook")
    alert = {k: v for k, v in data["alert"].items() if k != "rules"} | {"rule": old}
    assert Delivery.from_dict({**data, "alert": alert}).alert.rules == rules


def test_an_old_form_job_queued_in_redis_is_delivered(
    tmp_path, receiver, redis_client, redis_url
) -> None:
    app = make_app(
        tmp_path, redis_url, f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n", "[hook]"
    )
    try:
        data = payload(1, "hook")
        alert = {k: v for k, v in data["alert"].items() if k != "rules"}
        old = {**data, "alert": {**alert, "rule": "nk-in-kursk, nk-prisoner"}}
        assert enqueue_delivery(redis_client, old["delivery"], old)
        assert run_jobs(app) == 0
        assert sent(redis_client, old) and len(receiver.received) == 1
        assert "soldier 1 captured" in texts(receiver)[0]
    finally:
        uninstall()


def test_the_config_holds_parsed_values(tmp_path) -> None:
    from configs import NK_WATCHLIST, feeds_yaml, write_config

    from worker.config import load_config
    from worker.config.schedule import DigestSchedule, QuietHours
    from worker.config.settings import SendRate

    root = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": "http://127.0.0.1:9/feed.xml"}),
        destinations=(
            "hook:\n  url: json://127.0.0.1:9/alerts\n  rate: 5/10s\n"
            '  quiet_hours: "22:00-07:00 Europe/Kyiv"\n  digest: "daily 08:00 Europe/Kyiv"\n'
        ),
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )
    dest = load_config(root, env={}).destinations["hook"]
    assert dest.rate == SendRate(messages=5, per=10.0)
    assert isinstance(dest.quiet_hours, QuietHours) and isinstance(dest.digest, DigestSchedule)
    assert dest.digest.label == "daily" and str(dest.quiet_hours.tz) == "Europe/Kyiv"
