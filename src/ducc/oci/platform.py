"""Platforms (`os/architecture[/variant]`), normalised the way containerd does.

`x86_64` is `amd64`, `aarch64` is `arm64`, `arm64/v8` is plain `arm64`, `armhf` is `arm/v7`,
so the spellings registries and users write compare equal. `label` is DUCC's `.multiarch`
directory name: `<arch>` or `<arch>:<variant>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ducc.errors import BadPlatform

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True, slots=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @property
    def label(self) -> str:
        """DUCC's `.multiarch/<label>` directory name."""
        return f"{self.architecture}:{self.variant}" if self.variant else self.architecture

    @property
    def is_unknown(self) -> bool:
        """Attestation and other non-runnable index entries say `unknown/unknown`."""
        return self.os == "unknown" or self.architecture == "unknown"

    def __str__(self) -> str:
        tail = f"/{self.variant}" if self.variant else ""
        return f"{self.os}/{self.architecture}{tail}"


DEFAULT_PLATFORM = Platform("linux", "amd64")


def normalize_platform(os_name: str, architecture: str, variant: str = "") -> Platform:
    """The canonical form of a platform triple (containerd `platforms.Normalize`)."""
    arch = architecture.lower()
    var = variant.lower()
    if arch == "armhf":
        arch, var = "arm", "v7"
    elif arch == "armel":
        arch, var = "arm", "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "amd64" and var in {"v1", "1"}:
        var = ""
    elif arch == "arm64":
        var = _arm64_variant(var)
    elif arch == "arm":
        var = "v7" if var in {"", "7"} else (f"v{var}" if var.isdigit() else var)
    return Platform(os_name.lower(), arch, var)


def _arm64_variant(variant: str) -> str:
    if variant in {"8", "v8", "v8.0"}:
        return ""
    if variant in {"9", "9.0", "v9.0"}:
        return "v9"
    if variant and variant[0].isdigit():
        return f"v{variant}"
    return variant


def platform_of_label(label: str) -> Platform:
    """The platform a `.multiarch/<label>` directory stands for: DUCC's raw `arm64:v8` and
    `arm` and ducc's normalised `arm64` and `arm:v7` compare equal."""
    architecture, _, variant = label.partition(":")
    return normalize_platform("linux", architecture, variant)


def name_problem(field: str, value: str) -> str | None:
    """Why `value` cannot be a platform's os, architecture or variant, or None. A platform
    from a registry names a directory (`.multiarch/<label>`): `..` or `/` must not pass."""
    if _NAME.fullmatch(value):
        return None
    return f"{field} {value!r} is not a platform name (1-32 of a-z, 0-9, '.', '_', '-')"


def parse_platform(text: str) -> Platform:
    """Parse `os/arch[/variant]` as given on the command line (`linux/arm64/v8`)."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(_NAME.fullmatch(p) for p in parts):
        raise BadPlatform(
            f"platform {text!r} is not os/architecture[/variant]",
            hint="for example linux/amd64, linux/arm64 or linux/arm/v7",
        )
    return normalize_platform(*parts)
