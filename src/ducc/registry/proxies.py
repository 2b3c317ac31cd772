"""DUCC's pull-through proxies: `DUCC_<R>_PROXY` for the registries `DUCC_AUTH_REGISTRIES` names.

`DUCC_<R>_PROXY=host[:port][/path]` sends every request for a registry whose host contains
`DUCC_<R>_IDENT` to `<scheme>://host/v2/<path>/<repository>/...` instead (a Harbor proxy cache
project, a registry mirror), as DUCC's `baseUrl` does. Published paths keep the registry's
name; only where the bytes come from changes. `DUCC_<R>_USER`/`_PASS`, when set with a proxy,
are offered to the proxy (DUCC sent none; a proxy that refuses them is asked anonymously).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ducc.errors import CredentialsInvalid
from ducc.oci.reference import DOCKER_HUB_ALIASES

_HOST = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")
_PATH = re.compile(r"[a-z0-9._-]+(?:/[a-z0-9._-]+)*")


@dataclass(frozen=True, slots=True)
class Proxy:
    """Where requests for the registries matching `ident` go instead."""

    name: str  # the `<R>` of DUCC_<R>_PROXY, for messages
    ident: str  # canonical: Docker Hub's aliases are `docker.io`
    host: str  # host[:port]
    path: str = ""  # the proxy's repository prefix (`dockerhub` in `harbor.example/dockerhub`)
    scheme: str | None = None  # None: the image's own scheme, as DUCC did

    def serves(self, registry: str) -> bool:
        return self.ident in canonical_host(registry)


def canonical_host(registry: str) -> str:
    """Docker Hub's names all mean one registry."""
    host = registry.lower()
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


def proxies_from_environment(environ: Mapping[str, str]) -> tuple[Proxy, ...]:
    """Every `DUCC_<R>_PROXY` of a registry `DUCC_AUTH_REGISTRIES` names."""
    found = []
    for name in filter(
        None, (n.strip() for n in environ.get("DUCC_AUTH_REGISTRIES", "").split(","))
    ):
        value = environ.get(f"DUCC_{name}_PROXY", "").strip()
        ident = environ.get(f"DUCC_{name}_IDENT", "").strip()
        if value and ident:
            found.append(parse_proxy(name, ident, value))
    return tuple(found)


def parse_proxy(name: str, ident: str, value: str) -> Proxy:
    """`[scheme://]host[:port][/path]`; `CredentialsInvalid` names the variable otherwise."""
    variable = f"DUCC_{name}_PROXY"
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    elif scheme not in ("http", "https"):
        raise CredentialsInvalid(f"{variable}: unsupported scheme {scheme!r} (http or https)")
    host, _, path = rest.partition("/")
    if "@" in rest:
        raise CredentialsInvalid(
            f"{variable} carries credentials",
            hint=f"put them in DUCC_{name}_USER and DUCC_{name}_PASS",
        )
    path = path.strip("/")
    if not _HOST.fullmatch(host) or (path and not _PATH.fullmatch(path)):
        raise CredentialsInvalid(
            f"{variable}={value!r} is not host[:port][/path]",
            hint="for example harbor.example.org/dockerhub-proxy",
        )
    return Proxy(name, canonical_host(ident), host.lower(), path, scheme or None)
