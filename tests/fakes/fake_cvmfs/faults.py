"""Failure injection: `FAKE_CVMFS_<FAULT>=N` makes the Nth matching call from now misbehave.

Counters live in state/faults.json. Setting a variable to a new value re-arms it; a call
made while it is unset forgets it. Each arming fires once.
"""

from __future__ import annotations

import json

from .errors import USAGE, FakeError
from .state import Config, write_json


def fires(config: Config, variable: str) -> bool:
    """Count this call against `variable`; True when it is the Nth since the value was set."""
    path = config.state / "faults.json"
    counters = json.loads(path.read_text()) if path.exists() else {}
    value = config.env.get(variable, "")
    if not value:
        if counters.pop(variable, None) is not None:
            write_json(path, counters)
        return False
    if not value.isdigit() or int(value) < 1:
        raise FakeError(f"{variable}={value!r}: expected a positive number", USAGE)
    record = counters.get(variable)
    if record is None or record["armed"] != value:
        record = {"armed": value, "seen": 0}
    record["seen"] += 1
    counters[variable] = record
    write_json(path, counters)
    return bool(record["seen"] == int(value))


def injected(variable: str, what: str) -> FakeError:
    return FakeError(f"{what} (failure injected by {variable})")
