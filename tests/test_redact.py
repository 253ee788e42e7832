"""One redaction through every consumer: log lines, stats, Redis writes, error text.

Each secret is tried plain, percent-encoded and as a query-string value
(``+`` for a space), since secrets reach text inside URLs. Logs are captured from
the real logging setup (``setup_logging``), not pytest's handler.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from deliverkit import make_app, payload, uninstall

from worker.core.logs import redactor, setup_logging
from worker.core.redact import redact_text, url_secrets
from worker.deliver import send as deliver_mod
from worker.model import Delivery
from worker.service.stats import collect, render_stats

SECRET = "tok3n S3CRET/4f9a+2b"
LITERAL = "Lit3ralT0ken99"  # written in destinations.yaml itself, not through ${ENV}
FORMS = {
    "plain": SECRET,
    "percent": quote(SECRET, safe=""),
    "query": "https://hooks.example.com/x?format=text&token=" + quote_plus(SECRET),
    "literal": f"json://127.0.0.1:9/hook/{LITERAL}",
}
LEAKS = [SECRET, quote(SECRET, safe=""), quote_plus(SECRET), quote(SECRET, safe="/:@"), LITERAL]


def _leaks(text: str) -> list[str]:
    """Return what of a secret shows in ``text``: a whole form, or a piece of one."""
    return [leak for leak in [*LEAKS, "S3CRET", "4f9a", "Lit3ral"] if leak in text]


@pytest.fixture
def app(tmp_path, redis_url, redis_client):
    dests = f"hook:\n  url: json://127.0.0.1:9/hook/{LITERAL}?key=${{HOOK_TOKEN}}\n"
    yield make_app(tmp_path, redis_url, dests, notify="[hook]", env={"HOOK_TOKEN": SECRET})
    uninstall()


@pytest.fixture
def real_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    redactor().update(())


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_redact_text_masks_every_form(app, form: str) -> None:
    out = redact_text(f"failed: {form}", app.config().secrets())
    assert _leaks(out) == [] and "****" in out


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "text"])
def test_log_lines_from_the_real_setup_are_masked(app, real_logging, capfd, json_lines) -> None:
    setup_logging("INFO", json_lines=json_lines)
    redactor().update(app.config().secrets())
    log = logging.getLogger("newsalert.test")
    for name, form in FORMS.items():
        log.warning("send failed (%s): %s", name, form)
    try:
        raise RuntimeError(f"POST {FORMS['query']} refused")
    except RuntimeError:
        log.exception("delivery crashed")
    err = capfd.readouterr().err
    assert err.count("send failed") == len(FORMS) and "RuntimeError" in err
    assert _leaks(err) == [], err


def test_destination_health_dead_letters_and_stats_are_masked(app, redis_client) -> None:
    config = app.config()
    reason = "destination hook: " + " ".join(FORMS.values())
    deliver_mod.record_failure(
        redis_client, "hook", reason, secrets=config.destinations["hook"].secrets
    )
    deliver_mod.dead_letter(
        redis_client, config, Delivery.from_dict(payload(1, "hook")), reason, notify=False
    )
    written = [
        json.dumps({k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()})
        if redis_client.type(key) == b"hash"
        else repr(redis_client.dump(key))
        for key in redis_client.keys("newsalert:*")
    ]
    assert any("destination hook" in w for w in written)
    assert _leaks("\n".join(written)) == []
    figures = collect(app)
    assert "****" in figures["destinations"]["hook"]["last_error"]
    assert _leaks(json.dumps(figures)) == [] and _leaks(render_stats(figures)) == []


def test_an_error_from_a_destination_is_masked(app) -> None:
    """``test-destination`` against a refusing port: the error names the URL, masked."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NEWSALERT_CONFIG")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "--config",
            str(app.config_dir),
            *["test-destination", "hook"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "HOOK_TOKEN": SECRET},
    )
    assert result.returncode != 0 and "destination hook" in result.stderr
    assert "****" in result.stderr and "Traceback" not in result.stderr
    assert _leaks(result.stdout + result.stderr) == [], result.stderr


def test_url_secrets_keeps_hosts_words_and_options() -> None:
    url = "json://alerts:Pa55word99@hooks.example.com:8443/services/T0KEN123?format=text&to=ops"
    assert url_secrets(url) == ["Pa55word99", "T0KEN123"]
