"""Commands that write config: import-opml, init, add-feed."""

from __future__ import annotations

from pathlib import Path

import click

from worker.commands.common import (
    handled,
)
from worker.service.app import App, default_config_dir


@click.command("import-opml")
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


@click.command()
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


@click.command("add-feed")
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


COMMANDS = (
    import_opml,
    init,
    add_feed,
)
