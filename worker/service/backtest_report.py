"""Print a backtest: per watchlist and rule, volume per day, new/gone/same, a few examples."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import TextIO

from worker.config import Config
from worker.config.schema import parse_duration
from worker.core.logs import progress_bar
from worker.deliver.render import snippets
from worker.errors import NewsAlertError
from worker.model import Alert
from worker.service.app import App
from worker.service.backtest import (
    CHANGES,
    Line,
    Window,
    expected_items,
    group,
    run_backtest,
)
from worker.service.backtest_match import Selection, highlighted

#: Examples shown per change per rule.
EXAMPLES = 3
_MARK = {"new": "+", "gone": "-", "same": "="}


def _day(t: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t or 0))


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _span(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days" if seconds >= 86400 else f"{seconds / 3600:.1f} hours"


def coverage_note(window: Window) -> str | None:
    """Return the line that says the archive does not reach back as far as asked, if so."""
    oldest = window.covered_from
    if oldest is None:
        return None
    return (
        f"note: the archive goes back only to {_clock(oldest)} ({_span(window.end - oldest)}), "
        f"not the {_span(window.since)} asked for; figures cover that shorter period"
    )


def header(window: Window, config: Config) -> str:
    """Return the first line of a text report: what was run over what, and how fast."""
    rate = window.items / window.seconds if window.seconds > 0 else 0.0
    return (
        f"backtest of config {config.version} ({window.rules} rules) over "
        f"{window.items} archived items from {_clock(max(window.start, window.archive.oldest or 0))}"
        f" to {_clock(window.end)}: {window.seconds:.1f}s, {rate:,.0f} items/s"
    )


def _example(config: Config, line: Line) -> list[str]:
    item = line.item
    when = _clock(item.seen_at) if item.seen_at else "?"
    out = [
        f"    {_MARK[line.change]} {item.title[:100]}  ({item.feed}, {when})",
        f"      {item.link}",
    ]
    marks = highlighted(config, line.watchlist, line.rule, item) if line.change != "gone" else ()
    alert = Alert(line.watchlist, line.watchlist, (line.rule,), item, marks)
    out += [f"      {name}: {text}" for name, text in snippets(alert, "text", limit=2)]
    terms = dict.fromkeys(f"{h.text!r} ({h.field})" for h in marks)
    if terms:
        out.append("      matched: " + ", ".join(list(terms)[:6]))
    return out


def _rule_block(config: Config, wid: str, rule: str, lines: Sequence[Line]) -> Iterator[str]:
    wl = config.watchlist(wid)
    tag = "  [shadow: counted, never delivered]" if wl and wl.is_shadow(rule) else ""
    tag = tag or ("  [not in this config]" if wl is None else "")
    yield f"■ {wid} / {rule}{tag}"
    hits = [ln for ln in lines if ln.change != "gone"]
    yield f"  would alert on {len(hits)} items, {len({ln.story for ln in hits})} stories"
    days: dict[str, tuple[int, set[str]]] = {}
    for ln in hits:
        n, stories = days.setdefault(_day(ln.item.seen_at), (0, set()))
        days[_day(ln.item.seen_at)] = (n + 1, stories | {ln.story})
    for day, (n, stories) in sorted(days.items()):
        yield f"    {day}  {n:>5} items  {len(stories):>5} stories"
    counts = {c: len({ln.story for ln in lines if ln.change == c}) for c in CHANGES}
    yield (
        f"  compared with what was alerted (stories): {counts['new']} new, "
        f"{counts['gone']} gone, {counts['same']} same"
    )
    for change in CHANGES:
        # Lines whose item kept its text first (worker.service.backtest_match).
        of = [ln for ln in lines if ln.change == change]
        picked = sorted(of, key=lambda ln: not ln.item.texts().keys() - {"title"})[:EXAMPLES]
        if picked:
            yield f"  {change}:"
            for ln in picked:
                yield from _example(config, ln)


def render_text(window: Window, config: Config, lines: Sequence[Line]) -> Iterator[str]:
    """Yield the text report of a finished backtest."""
    yield header(window, config)
    grouped = group(lines)
    if not grouped:
        yield "no rule of the selection would alert on any archived item, and none alerted"
    for (wid, rule), rule_lines in grouped.items():
        yield ""
        yield from _rule_block(config, wid, rule, rule_lines)


def backtest_command(
    app: App,
    since: str,
    pick: tuple[str | None, str | None],
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run ``newsalert backtest``: the report to ``out``, notes to ``err``; return its lines.

    ``pick`` is (``--watchlist``, ``--rule``); either may be None.
    """
    client, config = app.redis, app.config()
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise NewsAlertError(f"--since: {exc}") from None
    if seconds <= 0:
        raise NewsAlertError("--since must be more than 0")
    window, lines = run_backtest(client, config, seconds, Selection(*pick))
    if not window.archive.items:
        raise NewsAlertError(
            "the archive is empty: nothing to backtest. The poller archives the items it "
            "accepts while `archive:` in feeds.yaml is on (default 7d); let it run first"
        )
    note = coverage_note(window)
    if note:
        err.write(note + "\n")
    with progress_bar(expected_items(window), "backtest") as advance:
        window.progress = advance
        if as_json:
            count = 0
            for line in lines:
                out.write(json.dumps(line.to_json(), ensure_ascii=False) + "\n")
                count += 1
            err.write(header(window, config) + "\n")
            return count
        done = list(lines)
    for text in render_text(window, config, done):
        out.write(text + "\n")
    return len(done)
