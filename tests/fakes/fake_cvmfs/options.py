"""Command-line options the way cvmfs_server takes them, including DUCC's one-argv "-T a=b"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import USAGE, FakeError


@dataclass(frozen=True, slots=True)
class Spec:
    """Spellings ('-T', '--template') mapped to canonical option names."""

    flags: Mapping[str, str] = field(default_factory=dict)
    valued: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Parsed:
    options: Mapping[str, list[str]]
    positional: list[str]

    def has(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None

    def values(self, name: str) -> list[str]:
        return list(self.options.get(name, []))


def _split(arg: str) -> tuple[str, str]:
    """'--name=v' -> ('--name', 'v'); '-Xv' and '-X v' (one argv) -> ('-X', 'v')."""
    if arg.startswith("--"):
        name, _, value = arg.partition("=")
        return name, value
    return arg[:2], arg[2:].strip()


def parse(spec: Spec, verb: str, args: Sequence[str]) -> Parsed:
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, value = _split(arg)
        if name in spec.flags and not value:
            options.setdefault(spec.flags[name], []).append("")
        elif name in spec.valued:
            if not value:
                if not rest:
                    raise FakeError(f"Command {verb}: option {name} needs a value", USAGE)
                value = rest.pop(0)
            options.setdefault(spec.valued[name], []).append(value)
        else:
            raise FakeError(f"Command {verb}: Unrecognized option: {arg}", USAGE)
    return Parsed(options, positional)


def one_repository(verb: str, parsed: Parsed) -> str:
    if len(parsed.positional) != 1:
        raise FakeError(f"Command {verb}: expected one repository name", USAGE)
    return parsed.positional[0]
