"""Commands for running a deployment: stats, backtest, mute, unmute, replay, test-destination."""

from __future__ import annotations

import json
import sys

import click

from worker.commands.common import (
    app_of,
    handled,
)
from worker.errors import DeliveryError, NewsAlertError


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handled
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show per-feed, per-watchlist and per-destination figures from Redis."""
    from worker.service.stats import collect, render_stats

    data = collect(app_of(ctx))
    click.echo(json.dumps(data, indent=2) if as_json else render_stats(data))


@click.command()
@click.option("--since", default="7d", show_default=True, help="How far back, e.g. 12h, 7d.")
@click.option("--watchlist", default=None, help="Only this watchlist (its file name).")
@click.option("--rule", default=None, help="Only this rule.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per item per line.")
@click.pass_context
@handled
def backtest(
    ctx: click.Context, since: str, watchlist: str | None, rule: str | None, as_json: bool
) -> None:
    """Run the rules of --config (may be an edited copy) over archived items; send nothing."""
    from worker.service.backtest_report import backtest_command

    app = app_of(ctx)
    backtest_command(app, since, (watchlist, rule), as_json, sys.stdout, sys.stderr)


@click.command()
@click.argument("target", metavar="WATCHLIST[/RULE]")
@click.option("--for", "duration", required=True, help="How long, e.g. 30m, 2h, 1d.")
@click.option("--reason", default="", help="Why (kept in the mute log and shown by stats).")
@click.pass_context
@handled
def mute(ctx: click.Context, target: str, duration: str, reason: str) -> None:
    """Stop a watchlist or one rule delivering for a while, on every worker, no deploy."""
    from worker.deliver.mute import mute_command

    app = app_of(ctx)
    click.echo(mute_command(app.redis, app.config(), target, duration, reason))


@click.command()
@click.argument("target", metavar="WATCHLIST[/RULE]")
@click.option("--reason", default="", help="Why (kept in the mute log).")
@click.pass_context
@handled
def unmute(ctx: click.Context, target: str, reason: str) -> None:
    """End a mute now (a volume-guard mute too)."""
    from worker.deliver.mute import unmute_command

    app = app_of(ctx)
    click.echo(unmute_command(app.redis, app.config(), target, reason))


@click.command()
@click.option("--destination", default=None, help="Only dead letters for this destination.")
@click.option("--since", default=None, help="Only those that failed within this long, e.g. 2h.")
@click.pass_context
@handled
def replay(ctx: click.Context, destination: str | None, since: str | None) -> None:
    """Re-send failed deliveries from the dead-letter list (each still at most once)."""
    from worker.config.schema import parse_duration
    from worker.service.replay import replay_dead_letters

    app = app_of(ctx)
    if destination is not None and destination not in app.config().destinations:
        raise NewsAlertError(f"unknown destination {destination!r}")
    try:
        window = parse_duration(since) if since else None
    except ValueError as exc:
        raise NewsAlertError(f"--since: {exc}") from None
    n = replay_dead_letters(app, destination, window)
    click.echo(
        f"{n} dead letter(s) queued again; a running worker (or `newsalert work --burst`) sends them"
    )


@click.command("test-destination")
@click.argument("name")
@click.pass_context
@handled
def test_destination(ctx: click.Context, name: str) -> None:
    """Send a real test message to a destination and report the outcome."""
    from worker.deliver.render import redact_url
    from worker.deliver.send import default_format, send

    dest = app_of(ctx).config().destinations.get(name)
    if dest is None:
        raise NewsAlertError(f"unknown destination {name!r}")
    # send() raises DeliveryError (exit code 1) unless the service accepted it: a 404
    # or 500 is a failure here, not "sent". It bypasses the ledger and the rate limit.
    try:
        send(
            dest,
            "newsalert test",
            "This is a test message from newsalert.",
            dest.format or default_format(dest.url),
        )
    except DeliveryError as exc:
        raise DeliveryError(f"{exc} (url {redact_url(dest.url)})") from None
    click.echo(f"ok: {name} ({redact_url(dest.url)}) accepted the test message")


COMMANDS = (
    stats,
    backtest,
    mute,
    unmute,
    replay,
    test_destination,
)
