"""The converters behind config values: durations, rates, sizes."""

from __future__ import annotations

import pytest

from worker.config.schema import parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172800),
        ("500ms", 0.5),
        (90, 90),
        ("1.5m", 90),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text, rate",
    [
        ("1/s", (1, 1.0)),
        ("20/m", (20, 60.0)),
        ("100/h", (100, 3600.0)),
        ("5/10s", (5, 10.0)),
    ],
)
def test_rates(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text, size",
    [
        ("10MB", 10_000_000),
        ("2MiB", 2 * 1024**2),
        ("512KiB", 512 * 1024),
        (4096, 4096),
        ("1GB", 10**9),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "parse, text",
    [
        (parse_duration, "soon"),
        (parse_duration, "5 minutes"),
        (parse_rate, "fast"),
        (parse_rate, "0/s"),
        (parse_size, "big"),
        (parse_size, "10 parsecs"),
    ],
)
def test_nonsense_is_a_clear_error(parse, text):
    with pytest.raises(ValueError, match="bad"):
        parse(text)
