"""Durations as operators write them."""

from __future__ import annotations

import pytest

from ducc.errors import InputError
from ducc.units import human_bytes, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 604800), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m10", "10m junk", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError, match="bad duration"):
        parse_duration(text)


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024 * 1024) == "3.0 MiB"


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("0", 0),
        ("4096", 4096),
        ("64k", 65536),
        ("64M", 64 << 20),
        ("2GiB", 2 << 30),
        ("1 t", 1 << 40),
    ],
)
def test_sizes(text: str, count: int) -> None:
    assert parse_size(text) == count


@pytest.mark.parametrize("text", ["", "M", "-1", "1.5G", "12X", "1e9", "64 MBytes"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InputError, match="bad size"):
        parse_size(text)
