"""Image references: `[scheme://]host[:port]/repository[:tag][@digest]`, parsed strictly.

Names follow the OCI distribution-spec grammar (lowercase path components, tags of at most
128 characters); a tag may instead be a shell-style glob (`21.2.1*`), or a pattern written for
DUCC as a regular expression (`1.1+*`, `v.*-cuda`), which is read as DUCC read it. Docker
Hub's aliases share one API host, and a one-component Docker Hub repository gets `library/`;
the registry keeps the spelling the user wrote, because it is part of every published path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from ducc.errors import BadPattern, BadReference
from ducc.oci.digest import Digest, digest_problem
from ducc.oci.glob import Glob, compile_glob, is_glob

DOCKER_HUB_ALIASES = frozenset(
    {"registry.hub.docker.com", "docker.io", "index.docker.io", "registry-1.docker.io"}
)
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"
SCHEMES = ("https", "http")

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_TAG_PATTERN_CHARS = re.compile(r"[A-Za-z0-9._\-*?\[\]!^]+")
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_NAME_LENGTH = 255  # host[:port]/repository, as clients commonly cap it
MAX_TAG_LENGTH = 128
# Only a regular expression gives these a meaning; a glob never holds them.
_REGEX_SIGNS = re.compile(r"\.\*|\.\+|[+(){}|$]|(?<!\[)\^|\\[dDwWsSb]")


class TagPattern(StrEnum):
    GLOB = "glob"  # ducc's wildcards: `*`, `?`, `[set]`; `.` is literal
    DUCC_REGEX = "ducc-regex"  # DUCC's: `*` becomes `.*`, the whole tag must match the regex


def is_ducc_regex(tag: str) -> bool:
    """Whether a tag is a pattern written for DUCC as a regular expression. DUCC expanded a
    tag only when it held a `*` (`strings.Contains(tag, "*")`), then compiled it, with each
    `*` made `.*`, as a regex the whole tag must match (`filterUsingGlob`)."""
    return "*" in tag and _REGEX_SIGNS.search(tag) is not None


def ducc_regex(tag: str) -> re.Pattern[str]:
    """The expression DUCC matched tags against; `BadPattern` when it does not compile."""
    try:
        return re.compile(tag.replace("*", ".*"))
    except re.error as exc:
        raise BadPattern(f"DUCC wildcard {tag!r} is not a regular expression: {exc}") from None


def suggested_glob(tag: str) -> str | None:
    """The shell glob matching exactly the tags DUCC's reading of `tag` matches (an unescaped
    `.` is any character: `?`), or None when no glob does (`+`, groups, alternatives)."""
    text = tag.removeprefix("^").removesuffix("$")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ".-_":
            out.append(text[i + 1])
            i += 2
            continue
        if ch in "+(){}|$^\\?[]":
            return None
        out.append("?" if ch == "." else ch)
        i += 1
    glob = re.sub(r"\*+", "*", "".join(out))
    return glob if _TAG_PATTERN_CHARS.fullmatch(glob) else None


def ducc_regex_warning(tag: str) -> str:
    """What a user should know about a DUCC regex wildcard, and the glob to write."""
    glob = suggested_glob(tag)
    same = f"the shell glob {glob!r} matches the same tags" if glob else "no shell glob does"
    return (
        f"tag pattern {tag!r} is read as DUCC read it: a regular expression the whole tag must "
        f"match, each '*' meaning '.*' and '.' any character; ducc's wildcards are shell "
        f"globs ('.' a literal dot), and {same}"
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference; `tag` may be a glob (see `is_wildcard`)."""

    scheme: str
    registry: str
    repository: str
    tag: str | None
    digest: Digest | None = None
    tag_is_default: bool = False
    pattern: TagPattern = TagPattern.GLOB  # how a wildcard tag is matched

    @property
    def is_docker_hub(self) -> bool:
        return self.registry in DOCKER_HUB_ALIASES

    @property
    def api_host(self) -> str:
        """The host the registry API is spoken to (Docker Hub aliases share one)."""
        return DOCKER_HUB_API_HOST if self.is_docker_hub else self.registry

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    @property
    def is_wildcard(self) -> bool:
        return self.tag is not None and is_glob(self.tag)

    def tag_glob(self) -> Glob:
        """The matcher of a wildcard tag: the glob, or DUCC's regular expression."""
        if self.tag is None:
            raise BadReference(f"{self}: no tag to match")
        if self.pattern is TagPattern.DUCC_REGEX:
            return Glob(self.tag, ducc_regex(self.tag))
        return compile_glob(self.tag)

    @property
    def reference(self) -> str:
        """`:tag`, `@digest` or `:tag@digest` (DUCC's `$(reference)`)."""
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    @property
    def image(self) -> str:
        """Repository plus reference (DUCC's `$(image)`)."""
        return self.repository + self.reference

    @property
    def pull_reference(self) -> str:
        """What the manifest is fetched by: the digest when given, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        if self.tag is None or self.is_wildcard:
            raise BadReference(f"{self}: a wildcard must be expanded before pulling")
        return self.tag

    @property
    def simple_name(self) -> str:
        """`registry/repository:tag`, the path of the image inside the repository.

        A digest-only reference uses the digest in place of the tag, as DUCC does.
        """
        label = self.tag if self.tag is not None else str(self.digest)
        return f"{self.registry}/{self.repository}:{label}"

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, tag_is_default=False, pattern=TagPattern.GLOB)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.registry}/{self.image}"


def parse_reference(text: str) -> Reference:
    """Parse `text`; raise `BadReference` naming the first thing that is wrong."""
    if not text:
        raise BadReference("empty image reference")
    if _userinfo_end(text) >= 0:
        raise BadReference(
            f"image reference {_hide_userinfo(text)!r} carries credentials",
            hint="put registry credentials in auth.json or DUCC_<registry>_USER/_PASS, "
            "never in the recipe",
        )
    if any(ch.isspace() or ord(ch) < 32 or ch == "\x7f" for ch in text):
        raise BadReference(f"image reference {text!r} contains whitespace or control characters")
    scheme, rest = _split_scheme(text)
    host_part, slash, path = rest.partition("/")
    registry = _parse_host(host_part, text, explicit_scheme="://" in text)
    if not slash or not path:
        raise BadReference(f"image reference {text!r} has no repository after the registry host")
    if "#" in path:
        raise BadReference(f"image reference {text!r} contains '#'")
    path, digest = _split_digest(path, text)
    repository, tag = _split_tag(path, text)
    _check_repository(repository, text)
    if registry in DOCKER_HUB_ALIASES and "/" not in repository:
        repository = f"library/{repository}"
    if len(f"{registry}/{repository}") > MAX_NAME_LENGTH:
        raise BadReference(
            f"image reference {text!r}: registry and repository exceed {MAX_NAME_LENGTH} characters"
        )
    pattern = TagPattern.GLOB
    if tag is not None and is_ducc_regex(tag):
        _check_ducc_regex(tag, text, has_digest=digest is not None)
        pattern = TagPattern.DUCC_REGEX
    elif tag is not None:
        _check_tag(tag, text, has_digest=digest is not None)
    is_default = tag is None and digest is None
    return Reference(
        scheme=scheme,
        registry=registry,
        repository=repository,
        tag=DEFAULT_TAG if is_default else tag,
        digest=digest,
        tag_is_default=is_default,
        pattern=pattern,
    )


def _split_scheme(text: str) -> tuple[str, str]:
    if "://" not in text:
        return "https", text
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in SCHEMES:
        raise BadReference(
            f"image reference {text!r}: unsupported scheme {scheme!r}",
            hint="use https:// (the default) or http:// for a plain-HTTP local registry",
        )
    return scheme.lower(), rest


def _userinfo_end(text: str) -> int:
    """Where `user:password@` ends in `text`, or -1.

    That is the last '@' in the host part, or the last '@' that a '/' follows: a digest after
    '@' never holds a '/', so a password holding '/' or whitespace is caught too, before any
    other message could echo it.
    """
    scheme = _SCHEME_PREFIX.match(text)
    start = scheme.end() if scheme else 0
    rest = text[start:]
    host_end = rest.find("/")
    host_part = rest if host_end < 0 else rest[:host_end]
    end = max(host_part.rfind("@"), rest.rfind("@", 0, max(rest.rfind("/"), 0)))
    return start + end if end >= 0 else -1


def redacted_reference(text: str) -> str:
    """`text` as it may be shown: credentials in it (`user:password@`) replaced by `***`."""
    return _hide_userinfo(text) if _userinfo_end(text) >= 0 else text


def _hide_userinfo(text: str) -> str:
    scheme = _SCHEME_PREFIX.match(text)
    prefix = scheme.group(0) if scheme else ""
    return f"{prefix}***{text[_userinfo_end(text) :]}"


def _parse_host(host_part: str, text: str, *, explicit_scheme: bool) -> str:
    """Validate `host[:port]` (IPv6 in brackets); return it lowercased."""
    if not host_part:
        raise BadReference(f"image reference {text!r} has no registry host")
    host, port = _split_port(host_part, text)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise BadReference(f"image reference {text!r}: bad IPv6 address {host}") from None
    elif not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise BadReference(f"image reference {text!r}: {host!r} is not a valid host name")
    looks_like_host = "." in host or port is not None or host == "localhost" or "[" in host
    if not looks_like_host and not explicit_scheme:
        raise BadReference(
            f"image reference {text!r} names no registry: {host!r} is not a host name",
            hint="start with the registry, e.g. registry.hub.docker.com/library/centos:centos7",
        )
    return host.lower() + (f":{port}" if port is not None else "")


def _split_port(host_part: str, text: str) -> tuple[str, int | None]:
    if host_part.startswith("["):
        end = host_part.find("]")
        if end < 0:
            raise BadReference(f"image reference {text!r}: unclosed '[' in the host")
        host, rest = host_part[: end + 1], host_part[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise BadReference(f"image reference {text!r}: junk after the IPv6 address")
        port_text = rest[1:]
    else:
        host, colon, port_text = host_part.partition(":")
        if not colon:
            return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BadReference(f"image reference {text!r}: bad port {port_text!r}")
    return host, int(port_text)


def _split_digest(path: str, text: str) -> tuple[str, Digest | None]:
    if "@" not in path:
        return path, None
    path, _, digest_text = path.partition("@")
    if "@" in digest_text:
        raise BadReference(f"image reference {text!r} has more than one '@'")
    if not digest_text:
        raise BadReference(f"image reference {text!r} has an empty digest after '@'")
    problem = digest_problem(digest_text)
    if problem:
        raise BadReference(f"image reference {text!r}: {problem}")
    return path, Digest.parse(digest_text)


def _split_tag(path: str, text: str) -> tuple[str, str | None]:
    head, slash, last = path.rpartition("/")
    if ":" not in last:
        return path, None
    name, _, tag = last.partition(":")
    if ":" in tag:
        raise BadReference(f"image reference {text!r} has too many ':' in {last!r}")
    if not tag:
        raise BadReference(f"image reference {text!r} has an empty tag after ':'")
    return head + slash + name, tag


def _check_repository(repository: str, text: str) -> None:
    for component in repository.split("/"):
        if not component:
            raise BadReference(f"image reference {text!r} has an empty path component")
        if component in {".", ".."}:
            raise BadReference(f"image reference {text!r}: {component!r} is not allowed in a path")
        if _COMPONENT.fullmatch(component):
            continue
        if _COMPONENT.fullmatch(component.lower()):
            raise BadReference(
                f"image reference {text!r}: repository {repository!r} must be lowercase"
            )
        raise BadReference(
            f"image reference {text!r}: bad repository component {component!r} "
            "(lowercase letters, digits and single separators . _ __ - only)"
        )


def _check_tag(tag: str, text: str, *, has_digest: bool) -> None:
    if not is_glob(tag):
        if len(tag) > MAX_TAG_LENGTH:
            raise BadReference(
                f"image reference {text!r}: tag is {len(tag)} characters, "
                f"the limit is {MAX_TAG_LENGTH}"
            )
        if not _TAG.fullmatch(tag):
            raise BadReference(
                f"image reference {text!r}: bad tag {tag!r} "
                "(letters, digits, '_', '.', '-'; not starting with '.' or '-')"
                + _literal_note(tag)
            )
        return
    if has_digest:
        raise BadReference(f"image reference {text!r}: a wildcard tag cannot have a digest")
    if len(tag) > 2 * MAX_TAG_LENGTH or not _TAG_PATTERN_CHARS.fullmatch(tag):
        raise BadReference(f"image reference {text!r}: bad wildcard tag {tag!r}")
    try:
        compile_glob(tag)
    except BadPattern as exc:
        raise BadReference(f"image reference {text!r}: bad wildcard tag: {exc}") from None


def _check_ducc_regex(tag: str, text: str, *, has_digest: bool) -> None:
    if has_digest:
        raise BadReference(f"image reference {text!r}: a wildcard tag cannot have a digest")
    if len(tag) > 2 * MAX_TAG_LENGTH:
        raise BadReference(f"image reference {text!r}: bad wildcard tag {tag!r}")
    try:
        ducc_regex(tag)
    except BadPattern as exc:
        raise BadReference(f"image reference {text!r}: {exc}") from None


def _literal_note(tag: str) -> str:
    """Why a regex-looking tag without `*` is a (bad) tag: DUCC fetched it as it is, too."""
    if not re.search(r"[+(){}|$^\\]", tag):
        return ""
    glob = suggested_glob(tag.rstrip("+") + "*")
    hint = f"; for a wildcard write {glob!r}" if glob else ""
    return (
        "; without a '*' it is no pattern: DUCC fetched it as a literal tag too, and no "
        f"registry holds such a tag{hint}"
    )
