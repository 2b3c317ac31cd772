"""The caps on one layer as command-line options (`convert`, `loop`, `unpack`), kept apart
from the publishing options so that `unpack` loads nothing of the conversion pipeline."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ducc.errors import InputError
from ducc.layers.limits import GIB, Limits
from ducc.units import parse_size

F = TypeVar("F", bound=Callable[..., Any])


def apply_options(func: F, options: list[Callable[[F], F]]) -> F:
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        count = parse_size(value)
    except InputError as exc:
        raise click.BadParameter(exc.message) from None
    if count < 1:
        raise click.BadParameter("must be at least 1 byte")
    return count


def limit_options(func: F) -> F:
    """Caps on one layer: a layer beyond any of them is refused as hostile (tar bombs)."""
    default = Limits()
    return apply_options(
        func,
        [
            click.option(
                "--max-layer-entries",
                type=click.IntRange(min=1),
                default=default.max_entries,
                show_default=True,
                help="Refuse a layer with more tar entries than this.",
            ),
            click.option(
                "--max-layer-bytes",
                callback=_size,
                metavar="SIZE",
                default=f"{default.max_bytes // GIB}G",
                show_default=True,
                help="Refuse a layer whose tar stream expands beyond SIZE (bytes, or 64M, 2G).",
            ),
            click.option(
                "--max-path-length",
                type=click.IntRange(min=1),
                default=default.max_path,
                show_default=True,
                help="Refuse a layer with a name or link target longer (bytes) than this.",
            ),
        ],
    )


def limits_of(kw: dict[str, Any]) -> Limits:
    """The layer caps from `limit_options` (removed from `kw`)."""
    return Limits(
        max_entries=kw.pop("max_layer_entries"),
        max_bytes=kw.pop("max_layer_bytes"),
        max_path=kw.pop("max_path_length"),
    )
