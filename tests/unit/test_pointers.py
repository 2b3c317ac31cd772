"""Pointers to a converted image: the podman entry's creation time comes from the config."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ducc.pointers import _created


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-01-01T10:00:00+02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01T08:00:00Z", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("0001-01-01T00:00:00+14:00", None),  # valid ISO 8601, before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", None),  # after year 9999 in UTC
        ("yesterday", None),
        (1700000000, None),
    ],
)
def test_creation_time_is_utc_or_nothing(created: object, expected: datetime | None) -> None:
    assert _created(json.dumps({"created": created}).encode()) == expected
