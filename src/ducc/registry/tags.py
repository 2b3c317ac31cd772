"""Tag lists and wildcard expansion.

`list_tags` follows `Link: <...>; rel="next"` as an opaque URL until the end (Docker Hub pages
at 100, Quay uses its own tokens, some registries never page), refusing cycles, foreign hosts
and more than the page cap. `expand` keeps the tags a wildcard matches; none is an error.
"""

from __future__ import annotations

import json
from urllib.parse import urljoin

import requests

from ducc import log
from ducc.errors import BadReference, NoMatchingTags, RegistryError
from ducc.oci.reference import Reference, TagPattern, parse_reference
from ducc.registry.client import RegistryClient

MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024


def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """Every tag of `repository`, in the registry's order, each once."""
    size = client.settings.tags_page_size
    target: str | None = f"/v2/{repository}/tags/list" + (f"?n={size}" if size else "")
    seen: set[str] = set()
    tags: dict[str, None] = {}
    while target is not None:
        url = client.absolute(target)
        _check_next(client, repository, url, seen)
        seen.add(url)
        fetched = client.fetch("GET", url, repository=repository, limit=MAX_TAGS_PAGE_BYTES)
        tags.update(dict.fromkeys(_page_tags(client, repository, fetched.body)))
        target = _next_link(fetched.headers.get("Link"), fetched.url)
    return list(tags)


def _check_next(client: RegistryClient, repository: str, url: str, seen: set[str]) -> None:
    where = f"{client.api_host}: tag list of {repository}"
    if len(seen) >= client.settings.page_cap:
        raise RegistryError(
            f"{where}: more than {client.settings.page_cap} pages; stopped",
            hint="raise the page cap in the registry settings if the repository really has "
            "that many tags",
        )
    if url in seen:
        raise RegistryError(f"{where}: the 'next' links loop back to a page already read")
    if not client.same_host(url):
        raise RegistryError(f"{where}: the 'next' link leaves the registry ({log.redact(url)})")


def _page_tags(client: RegistryClient, repository: str, body: bytes) -> list[str]:
    where = f"{client.api_host}: tag list of {repository}"
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistryError(f"{where}: the registry answered with invalid JSON") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    if tags is None and isinstance(data, dict):
        return []  # an empty repository may say "tags": null
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{where}: 'tags' is not a list of strings")
    return tags


def _next_link(header: str | None, base: str) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288), resolved against `base`."""
    if not header:
        return None
    for link in requests.utils.parse_header_links(header):
        if "next" in link.get("rel", "").split() and link.get("url"):
            return urljoin(base, link["url"])
    return None


def expand(client: RegistryClient, ref: Reference) -> list[Reference]:
    """The concrete references `ref` stands for: itself, or every matching tag, sorted as the
    spec orders tag lists (some registries do not)."""
    if not ref.is_wildcard:
        return [ref]
    glob = ref.tag_glob()
    tags = list_tags(client, ref.repository)
    matched = [c for t in sorted(tags) if glob.matches(t) and (c := _concrete(ref, t)) is not None]
    if not matched:
        raise NoMatchingTags(
            f"{ref}: no tag matches {ref.tag!r} among the {len(tags)} tags "
            f"{ref.registry} lists for {ref.repository}",
            hint="check the pattern; '*' and '?' match within the tag, '.' is literal"
            if ref.pattern is TagPattern.GLOB
            else "check the pattern, read as DUCC read it: a regular expression, '*' as '.*'",
        )
    return matched


def _concrete(ref: Reference, tag: str) -> Reference | None:
    """`ref` with `tag`, if the registry's tag is a valid one (it becomes a path)."""
    try:
        concrete = parse_reference(str(ref.with_tag(tag)))
    except BadReference as exc:
        log.get("registry").warning("tag_invalid", registry=ref.registry, tag=tag, error=str(exc))
        return None
    if concrete.is_wildcard:
        return None
    return concrete
