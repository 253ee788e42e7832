"""``FeedState``: the feed hash as typed values, tolerant of fields it does not know."""

from __future__ import annotations

import pytest

from worker.core import keys
from worker.errors import FailureReason
from worker.poll.state import FeedState


def test_reads_what_the_poller_writes(redis_client) -> None:
    written = FeedState.encode(
        {
            "failures": 3,
            "last_reason": FailureReason.TOO_LARGE,
            "last_error_at": 1700000000.5,
            "status": 503,
            "primed": True,
            "etag": '"abc"',
            "next_due": None,  # not written
        }
    )
    redis_client.hset(keys.feed_state("f"), mapping=written)
    state = FeedState.load(redis_client, "f")
    assert (state.failures, state.last_reason, state.last_error_at, state.status) == (
        3,
        FailureReason.TOO_LARGE,
        1700000000.5,
        503,
    )
    assert state.primed and state.etag == '"abc"' and state.next_due is None
    assert state.other == {}


def test_unknown_fields_are_kept_and_bad_values_read_as_defaults() -> None:
    state = FeedState.read(
        {
            b"websub_hub": b"https://hub.example.com/",  # another version's field
            b"failures": b"many",
            b"last_reason": b"solar_flare",
            b"identity": b"link",
        }
    )
    assert state.other == {"websub_hub": "https://hub.example.com/"}
    assert state.failures == 0 and state.last_reason is FailureReason.ERROR
    assert state.identity == "link"


def test_encode_refuses_a_field_it_does_not_know() -> None:
    with pytest.raises(KeyError, match="faliures"):
        FeedState.encode({"faliures": 1})


def test_failure_reasons_are_their_wire_names() -> None:
    assert f"{FailureReason.PRIVATE_ADDRESS}" == "private_address"
    assert FailureReason.read("gone") is FailureReason.GONE
