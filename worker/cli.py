"""The ``newsalert`` command. Thin: parse arguments, call the app, print, exit.

The pipeline's own commands are here; the others are in ``worker.commands``
(exit codes and error handling in ``worker.commands.common``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker.commands import configure, operate
from worker.commands.common import (
    RET_OK,
    RET_PENDING,
    app_of,
    handled,
    warn,
)
from worker.core import keys
from worker.core.logs import setup_logging
from worker.errors import ConfigError, NewsAlertError
from worker.service.app import App, default_config_dir

METRICS_PORT = click.option(
    "--metrics-port",
    type=int,
    default=None,
    envvar="PORT",
    help="Serve /metrics and /healthz on this port (default: $PORT, else none).",
)


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
        left = run_once(app_of(ctx), wait)
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

    app = app_of(ctx)
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
    app = app_of(ctx)
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
    """Show what feeds (URLs or files; default: every configured feed) would match, by story.

    Touches no Redis, sends nothing.
    """
    from worker.service.tryout import feeds_to_try, write_hits, write_stories
    from worker.stories.preview import RunStories

    app = app_of(ctx)
    engine = app.engine()
    stories = RunStories(app.config())
    count = 0
    try:
        for feed in feeds_to_try(app, sources, warn):
            count += write_hits(engine, feed, sys.stdout, as_json, stories)
    finally:  # text is grouped by story: print what was read even if a feed failed
        if not as_json:
            write_stories(stories, sys.stdout)
    if not as_json:
        click.echo(f"{count} hit(s) in {len(stories.hits)} stories", err=True)


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

    app = app_of(ctx)
    wl = app.config().watchlist(watchlist)
    if wl is None:
        raise NewsAlertError(f"unknown watchlist {watchlist!r}")
    engine = app.engine()
    from worker.service.tryout import feeds_to_try
    from worker.stories.preview import RunStories

    stories = RunStories(app.config())
    for feed in feeds_to_try(app, sources, warn):
        stories.add(i for i in feed.items if engine.match(i.texts(), watchlists=[watchlist]))
        for item in feed.items:
            click.echo(f"■ {item.title}  ({item.feed})")
            for expl in explain_item(engine, item.texts(), watchlist, rule):
                if wl.is_shadow(expl.rule):
                    click.echo(f"(shadow rule {expl.rule}: matched and counted, never delivered)")
                click.echo(render_explanation(expl))
            if item.id in stories.assigned:
                click.echo("  " + stories.describe(item, watchlist))


for _command in (*operate.COMMANDS, *configure.COMMANDS):
    cli.add_command(_command)
_after_command_too(cli)


def main() -> None:
    cli(prog_name="newsalert")


if __name__ == "__main__":
    main()
