"""The HTTP session every registry client sends through: no netrc credentials, no registry
token on a redirect to another origin, and connections its watcher can cut at a deadline."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from ducc.registry.settings import RegistrySettings
from ducc.registry.watch import WatchedAdapter


class _RegistrySession(requests.Session):
    """A session that drops `Authorization` on any redirect leaving the origin (a CDN gets
    no registry token, distribution-spec "API") and never adds netrc credentials."""

    def rebuild_auth(self, prepared_request: Any, response: requests.Response) -> None:
        old, new = urlsplit(response.request.url or ""), urlsplit(prepared_request.url or "")
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            prepared_request.headers.pop("Authorization", None)


def _no_netrc(request: Any) -> Any:
    return request


def new_session(settings: RegistrySettings) -> requests.Session:
    """The HTTP session a registry client uses (a `Registries` session_factory may wrap it)."""
    session = _RegistrySession()
    session.auth = _no_netrc
    session.headers["User-Agent"] = settings.user_agent
    pool = max(10, 2 * settings.max_concurrent)
    adapter = WatchedAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
