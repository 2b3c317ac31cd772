"""Caps that keep a hostile layer from exhausting disk, memory or time (all configurable)."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class Limits:
    """Refuse a layer beyond any of these; the defaults admit every real image seen so far.

    `max_bytes` caps the expanded (tar) stream of one layer, `max_header_bytes` one PAX or
    GNU long-name header, `max_path`/`max_name` are bytes of a whole name / one component,
    `max_depth` the number of components of a name.
    """

    max_entries: int = 10_000_000
    max_bytes: int = 512 * GIB
    max_path: int = 4096
    max_name: int = 255
    max_depth: int = 512
    max_header_bytes: int = 1 << 20
