"""`ducc convert --repair`: placeholder."""

from __future__ import annotations

from collections.abc import Sequence

from ducc.publish.base import Publisher
from ducc.reference import Reference


def repair_images(publisher: Publisher, refs: Sequence[Reference]) -> set[str]:
    return set()
