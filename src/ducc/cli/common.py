"""Helpers every command shares: warnings, registries, option callbacks."""

from __future__ import annotations

import click

from ducc.platform import Platform, parse_platform
from ducc.registry.client import Registries
from ducc.registry.credentials import CredentialStore


def warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def open_registries() -> Registries:
    return Registries(credentials=CredentialStore.from_environment())


def platform_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Platform | None:
    return parse_platform(value) if value else None
