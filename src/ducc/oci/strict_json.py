"""Strict JSON decoding for registry documents: size and nesting caps, typed field access.

Every accessor names the document and field in its `ManifestError`, so a user reading the
message knows which byte of which manifest the registry got wrong.
"""

from __future__ import annotations

import json
from typing import Any

from ducc.errors import ManifestError
from ducc.oci.digest import Digest, digest_problem

MAX_DEPTH = 32


def decode_json(raw: bytes, limit: int, what: str) -> dict[str, Any]:
    """Decode `raw` as one JSON object no larger than `limit` bytes, nested at most MAX_DEPTH."""
    if len(raw) > limit:
        raise ManifestError(f"{what} is {len(raw)} bytes, larger than the {limit} byte limit")
    try:
        data = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        raise ManifestError(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise ManifestError(f"{what} nests JSON deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{what} must be a JSON object, got {type(data).__name__}")
    if _depth(data) > MAX_DEPTH:
        raise ManifestError(f"{what} nests JSON deeper than {MAX_DEPTH} levels")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers picking different duplicates is how content gets reinterpreted.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity, which RFC 8259 (and the registry's own parser) refuse.
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def _wrong(where: str, key: str, want: str, value: Any) -> ManifestError:
    return ManifestError(f"{where}: '{key}' must be {want}, got {type(value).__name__}")


def _missing(where: str, key: str) -> ManifestError:
    return ManifestError(f"{where}: required field '{key}' is missing")


def get_str(data: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    """The string at `key`, "" when absent (or null) and not required."""
    value = data.get(key)
    if value is None:
        if required:
            raise _missing(where, key)
        return ""
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def get_int(data: dict[str, Any], key: str, where: str, *, required: bool = False) -> int:
    value = data.get(key)
    if value is None:
        if required:
            raise _missing(where, key)
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(where, key, "an integer", value)
    return value


def get_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong(where, key, "an object", value)
    return value


def require_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = get_object(data, key, where)
    if value is None:
        raise _missing(where, key)
    return value


def require_list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        raise _missing(where, key)
    if not isinstance(value, list):
        raise _wrong(where, key, "a list", value)
    return value


def get_str_list(
    data: dict[str, Any], key: str, where: str, *, required: bool = False
) -> list[str] | None:
    """A list of strings; None when absent or null (Docker writes `"Entrypoint": null`)."""
    value = data.get(key)
    if value is None:
        if required:
            raise _missing(where, key)
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _wrong(where, key, "a list of strings", value)
    return value


def get_str_map(data: dict[str, Any], key: str, where: str) -> dict[str, str] | None:
    value = get_object(data, key, where)
    if value is not None and not all(isinstance(item, str) for item in value.values()):
        raise ManifestError(f"{where}: '{key}' values must be strings")
    return value


def parse_digest(text: str, where: str) -> Digest:
    problem = digest_problem(text)
    if problem:
        raise ManifestError(f"{where}: {problem}")
    return Digest.parse(text)
