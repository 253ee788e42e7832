"""The ``newsalert`` command. Thin: parse arguments, call the app, print, exit.

Every ``NewsAlertError`` becomes one line on stderr and an exit code below;
a traceback means a bug.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from worker.core import keys
from worker.core.logs import setup_logging
from worker.errors import ConfigError, FeedError, NewsAlertError, RedisUnavailable
from worker.service.app import App, default_config_dir

RET_OK = 0
RET_ERROR = 1  # invalid config, failing examples, failed delivery test
RET_USAGE = 2  # click's own code for bad arguments
RET_REDIS = 3
RET_FEED = 4
RET_PENDING = 5

log = logging.getLogger("newsalert")
METRICS_PORT = click.option(
    "--metrics-port",
    type=int,
    default=None,
    envvar="PORT",
    help="Serve /metrics and /healthz on this port (default: $PORT, else none).",
)
F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(f"newsalert: {message}", err=True)
    sys.exit(code)


def handled(fn: F) -> F:
    """Turn our errors into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for line in exc.lines():
                click.echo(line, err=True)
            sys.exit(RET_ERROR)
        except RedisUnavailable as exc:
            _fail(str(exc), RET_REDIS)
        except FeedError as exc:
            _fail(str(exc), RET_FEED)
        except NewsAlertError as exc:
            _fail(str(exc), RET_ERROR)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_dir",
    default=default_config_dir,
    show_default="./config",
    envvar="NEWSALERT_CONFIG",
    type=click.Path(file_okay=False),
    help="Config directory.",
)
@click.option("--log-level", default="INFO", envvar="NEWSALERT_LOG_LEVEL", show_default=True)
@click.pass_context
def cli(ctx: click.Context, config_dir: str, log_level: str) -> None:
    """Streaming news alerts: poll feeds, match watchlists, notify through apprise."""
    setup_logging(log_level)
    ctx.obj = App(config_dir)
    ctx.call_on_close(ctx.obj.close)


def _late(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    if param.name == "config":  # the group has built the App already: point it elsewhere
        ctx.find_object(App).config_dir = Path(value)  # type: ignore[union-attr]
    else:
        setup_logging(value)


def _after_command_too(group: click.Group) -> None:
    """Accept ``--config`` and ``--log-level`` after the command name as well as before it.

    The copies have no default and no envvar, so they only override what was
    given before the command (or by the environment) when they are typed.
    """
    for command in group.commands.values():
        command.params += [
            click.Option([flag], expose_value=False, is_eager=True, callback=_late, help=what)
            for flag, what in (
                ("--config", "Config directory (also accepted before the command)."),
                ("--log-level", "Log level (also accepted before the command)."),
            )
        ]


def _warn(line: str) -> None:
    click.echo(line, err=True)


def _app(ctx: click.Context) -> App:
    app: App = ctx.obj
    from worker.core.logs import redactor

    redactor().update(app.config().secrets())
    return app


@cli.command()
@click.option("--once", is_flag=True, help="Poll every feed once, deliver, then exit.")
@click.option(
    "--wait", default=60.0, show_default=True, help="With --once: seconds to wait for deliveries."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes (each runs one thread per queue; matching uses one core each).",
)
@METRICS_PORT
@click.pass_context
@handled
def run(
    ctx: click.Context, once: bool, wait: float, workers: int, metrics_port: int | None
) -> None:
    """Run everything: poller and workers (the dyno)."""
    from worker.service.roles import run_once
    from worker.service.supervisor import supervise

    if once:
        left = run_once(_app(ctx), wait)
        sys.exit(RET_PENDING if left else RET_OK)
    app: App = ctx.obj  # the children load the config; the supervisor stays small
    app.lasting = True
    extra = ["--config", str(app.config_dir)]
    sys.exit(supervise(app, workers, extra, metrics_port=metrics_port))


@cli.command()
@click.option("--once", is_flag=True, help="Poll every feed once and exit.")
@METRICS_PORT
@click.pass_context
@handled
def poll(ctx: click.Context, once: bool, metrics_port: int | None) -> None:
    """Run the poller alone (scale out with more of these)."""
    from worker.service.roles import poll_forever, poll_once, serve_metrics

    app = _app(ctx)
    if once:
        poll_once(app)
    else:
        app.lasting = True
        serve_metrics(app, metrics_port, ("poller",))
        poll_forever(app)


@cli.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--queues", default=",".join(keys.QUEUES), show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes (more than 1: supervised children).",
)
@METRICS_PORT
@click.pass_context
@handled
def work(
    ctx: click.Context, burst: bool, queues: str, workers: int, metrics_port: int | None
) -> None:
    """Run RQ workers alone (scale out with more of these)."""
    from worker.service.roles import serve_metrics, work_forever
    from worker.service.supervisor import supervise

    names = tuple(q for q in queues.split(",") if q)
    ctx.obj.lasting = not burst
    if workers > 1 and not burst:
        app: App = ctx.obj
        extra = ["--config", str(app.config_dir)]
        sys.exit(supervise(app, workers, extra, poller=False, metrics_port=metrics_port))
    app = _app(ctx)
    serve_metrics(app, metrics_port, ("worker",))
    work_forever(app, burst=burst, queues=names)


@cli.command()
@click.pass_context
@handled
def check(ctx: click.Context) -> None:
    """Validate the config and run every watchlist's examples."""
    from worker.config.examples import example_problems

    app: App = ctx.obj
    config = app.config()
    problems = example_problems(config, app.engine())
    if problems:
        raise ConfigError(problems)
    rules = sum(len(w.rules) for w in config.watchlists)
    click.echo(
        f"ok: {len(config.feeds)} feeds, {len(config.watchlists)} watchlists, {rules} rules, "
        f"{len(config.destinations)} destinations (config {config.version})"
    )


@cli.command("try")
@click.argument("sources", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit per line.")
@click.pass_context
@handled
def try_(ctx: click.Context, sources: tuple[str, ...], as_json: bool) -> None:
    """Show what feeds (URLs or files; default: every configured feed) would match.

    Touches no Redis, sends nothing.
    """
    from worker.service.tryout import feeds_to_try, write_hits

    app = _app(ctx)
    engine = app.engine()
    feeds = feeds_to_try(app, sources, _warn)
    count = sum(write_hits(engine, feed, sys.stdout, as_json, app.config()) for feed in feeds)
    if not as_json:
        click.echo(f"{count} hit(s)", err=True)


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--watchlist", required=True, help="Watchlist id (its file name).")
@click.option("--rule", default=None, help="One rule of it.")
@click.pass_context
@handled
def explain(ctx: click.Context, sources: tuple[str, ...], watchlist: str, rule: str | None) -> None:
    """Show why each item did or did not match a watchlist's rules."""
    from worker.rules import explain as explain_item
    from worker.rules import render_explanation

    app = _app(ctx)
    wl = app.config().watchlist(watchlist)
    if wl is None:
        raise NewsAlertError(f"unknown watchlist {watchlist!r}")
    engine = app.engine()
    from worker.service.tryout import feeds_to_try

    for feed in feeds_to_try(app, sources, _warn):
        for item in feed.items:
            click.echo(f"■ {item.title}  ({item.feed})")
            for expl in explain_item(engine, item.texts(), watchlist, rule):
                if wl.is_shadow(expl.rule):
                    click.echo(f"(shadow rule {expl.rule}: matched and counted, never delivered)")
                click.echo(render_explanation(expl))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handled
def stats(ctx: click.Context, as_json: bool) -> None:
    """Show per-feed, per-watchlist and per-destination figures from Redis."""
    from worker.service.stats import collect, render_stats

    data = collect(_app(ctx))
    click.echo(json.dumps(data, indent=2) if as_json else render_stats(data))


@cli.command()
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

    app = _app(ctx)
    backtest_command(app, since, (watchlist, rule), as_json, sys.stdout, sys.stderr)


@cli.command()
@click.argument("target", metavar="WATCHLIST[/RULE]")
@click.option("--for", "duration", required=True, help="How long, e.g. 30m, 2h, 1d.")
@click.option("--reason", default="", help="Why (kept in the mute log and shown by stats).")
@click.pass_context
@handled
def mute(ctx: click.Context, target: str, duration: str, reason: str) -> None:
    """Stop a watchlist or one rule delivering for a while, on every worker, no deploy."""
    from worker.deliver.mute import mute_command

    app = _app(ctx)
    click.echo(mute_command(app.redis, app.config(), target, duration, reason))


@cli.command()
@click.argument("target", metavar="WATCHLIST[/RULE]")
@click.option("--reason", default="", help="Why (kept in the mute log).")
@click.pass_context
@handled
def unmute(ctx: click.Context, target: str, reason: str) -> None:
    """End a mute now (a volume-guard mute too)."""
    from worker.deliver.mute import unmute_command

    app = _app(ctx)
    click.echo(unmute_command(app.redis, app.config(), target, reason))


@cli.command()
@click.option("--destination", default=None, help="Only dead letters for this destination.")
@click.option("--since", default=None, help="Only those that failed within this long, e.g. 2h.")
@click.pass_context
@handled
def replay(ctx: click.Context, destination: str | None, since: str | None) -> None:
    """Re-send failed deliveries from the dead-letter list (each still at most once)."""
    from worker.config.schema import parse_duration
    from worker.service.replay import replay_dead_letters

    app = _app(ctx)
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


@cli.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
@handled
def import_opml(ctx: click.Context, file: str) -> None:
    """Add the feeds of an OPML export to feeds.yaml (comments and order kept)."""
    from worker.poll.opml import import_opml as run_import

    app: App = ctx.obj
    result = run_import(file, app.config_dir)
    click.echo(
        f"added {len(result.added)} feeds, skipped {result.present} already present"
        + (f" and {result.invalid} without an http(s) URL" if result.invalid else "")
        + f" ({Path(app.config_dir) / 'feeds.yaml'})"
    )


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.pass_context
@handled
def init(ctx: click.Context, directory: str | None) -> None:
    """Write a commented starter config into DIRECTORY (default: the --config directory)."""
    from worker.config.starter import next_commands, write_starter

    target = Path(directory) if directory else ctx.obj.config_dir
    for path in write_starter(target):
        click.echo(f"wrote {path}")
    click.echo("next:")
    for command in next_commands(target, Path(default_config_dir())):
        click.echo(f"  {command}")


@cli.command("add-feed")
@click.argument("url")
@click.option("--id", "feed_id", default="", help="Feed id (default: from the feed's title).")
@click.option("--tags", default="", help="Comma-separated tags, e.g. world,korea.")
@click.option("--interval", default="", help="Poll interval, e.g. 5m (default: defaults:).")
@click.option("--pick", default=1, show_default=True, help="Which of a page's feeds to add.")
@click.pass_context
@handled
def add_feed(
    ctx: click.Context, url: str, feed_id: str, tags: str, interval: str, pick: int
) -> None:
    """Add a feed by its URL, or by a web page that links to it, to feeds.yaml."""
    from worker.poll.discover import add_feed as run_add
    from worker.poll.feedsfile import NewFeed

    app: App = ctx.obj  # only feeds.yaml matters: a secret unset elsewhere must not stop it
    wanted = NewFeed(url, "", feed_id, tuple(t for t in tags.split(",") if t), interval)
    added = run_add(app.config_dir, url, wanted, pick)
    for line in added.report(url, app.config_dir / "feeds.yaml"):
        click.echo(line)


@cli.command("test-destination")
@click.argument("name")
@click.pass_context
@handled
def test_destination(ctx: click.Context, name: str) -> None:
    """Send a real test message to a destination and report the outcome."""
    from worker.deliver.render import redact_url
    from worker.deliver.send import default_format, send
    from worker.errors import DeliveryError

    dest = _app(ctx).config().destinations.get(name)
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


_after_command_too(cli)


def main() -> None:
    cli(prog_name="newsalert")


if __name__ == "__main__":
    main()
