"""`ducc loop`: the service (under systemd: `Type=notify`, see systemd/ducc.service)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ducc.cli.common import warn
from ducc.cli.compat import recipes_from_environment
from ducc.cli.convert import recipe_options
from ducc.cli.group import cli
from ducc.cli.options import build_converter, conversion_options, publisher_options
from ducc.errors import ExitCode, InputError, Interrupted
from ducc.service import prometheus
from ducc.service.daemon import Daemon, LoopOptions
from ducc.service.signals import installed
from ducc.service.webhook import WebhookServer
from ducc.units import parse_duration


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InputError(f"bad {what} {text!r}: use HOST:PORT, e.g. 127.0.0.1:9090")
    return host.strip("[]"), int(port)


def read_secret(path: Path | None) -> str:
    """The webhook secret from a file (never from the command line, which `ps` shows)."""
    if path is None:
        return os.environ.get("DUCC_WEBHOOK_SECRET", "")
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise InputError(f"cannot read the webhook secret {path}: {exc.strerror}") from None


@cli.command()
@click.argument("recipes", nargs=-1, type=click.Path(dir_okay=False))
@publisher_options
@conversion_options
@click.option(
    "--strict", is_flag=True, help="Refuse a recipe with any refused entry (exit 2 at start)."
)
@click.option(
    "--interval", default="10m", show_default=True, help="Time between checks of an image."
)
@click.option(
    "--jitter",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Spread of check times, as a fraction of the interval.",
)
@click.option(
    "--max-backoff",
    default="6h",
    show_default=True,
    help="Longest wait before checking an image that keeps failing.",
)
@click.option(
    "--webhook-listen", metavar="HOST:PORT", help="Accept registry and Harbor push webhooks here."
)
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The webhooks' shared secret [$DUCC_WEBHOOK_SECRET].",
)
@click.option("--metrics-listen", metavar="HOST:PORT", help="Serve Prometheus metrics here.")
@click.option(
    "--metrics-textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Prometheus metrics here after each cycle (node_exporter).",
)
def loop(recipes: tuple[str, ...], strict: bool, **kw: Any) -> int:
    """Keep the repositories in step with RECIPES (default $RECIPE_FILE, as DUCC's unit file
    runs `loop $RECIPE_FILE`) until stopped (SIGTERM): poll every image on a schedule, convert
    what changed, re-read the recipes when they change or on SIGHUP. A recipe entry that
    cannot be read is logged and recorded as a failed wish; the others are kept in step."""
    paths = recipes_from_environment(recipes, os.environ)
    interval, jitter, max_backoff = kw.pop("interval"), kw.pop("jitter"), kw.pop("max_backoff")
    webhook_listen, secret_file = kw.pop("webhook_listen"), kw.pop("webhook_secret_file")
    metrics_listen, metrics_textfile = kw.pop("metrics_listen"), kw.pop("metrics_textfile")
    options = LoopOptions(
        interval=parse_duration(interval),
        jitter=jitter,
        max_backoff=parse_duration(max_backoff),
        metrics_textfile=metrics_textfile,
    )
    if options.interval <= 0:
        raise InputError("--interval must be longer than 0")
    converter, state = build_converter(kw)
    daemon = Daemon(paths, converter, options, recipe_options(strict=strict), state)
    warn(daemon.wishlist.warnings)
    servers: list[Any] = []
    try:
        if metrics_listen:
            servers.append(prometheus.serve(*parse_address(metrics_listen, "--metrics-listen")))
        if webhook_listen:
            host, port = parse_address(webhook_listen, "--webhook-listen")
            secret = read_secret(secret_file)
            servers.append(WebhookServer(host, port, secret, daemon.on_push).start().httpd)
        with installed(hangup=True), converter.registries:
            daemon.run()
    except Interrupted as exc:
        click.echo(f"{exc.message}: stopped cleanly", err=True)
    finally:
        for server in servers:
            server.shutdown()
        if state is not None:
            state.close()
    return ExitCode.OK
