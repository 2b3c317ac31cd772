"""Layer caps on the command line: `--max-layer-entries`, `--max-layer-bytes` and
`--max-path-length` on every command that applies layers, validated before any work."""

from __future__ import annotations

import click
import pytest

from ducc.cli.group import cli
from ducc.cli.limits import limits_of
from ducc.cli.main import main
from ducc.layers.limits import Limits

COMMANDS = {
    "convert": ["recipe.yaml"],
    "convert-single-image": ["registry.test/a:1", "repo.test"],
    "loop": ["recipe.yaml"],
    "unpack": ["registry.test/a:1", "dest"],
}


def params(command: str, *options: str) -> dict[str, object]:
    chosen = cli.get_command(click.Context(cli), command)  # imports the command's module
    assert chosen is not None
    ctx = chosen.make_context(command, [*COMMANDS[command], *options])
    return dict(ctx.params)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_defaults_are_the_engines_defaults(command: str) -> None:
    assert limits_of(params(command)) == Limits()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_caps_are_parsed_into_limits(command: str) -> None:
    kw = params(
        command,
        *("--max-layer-entries", "1000", "--max-layer-bytes", "64M"),
        *("--max-path-length", "512"),
    )
    limits = limits_of(kw)
    assert (limits.max_entries, limits.max_bytes, limits.max_path) == (1000, 64 << 20, 512)
    assert limits.max_name == Limits().max_name  # the rest keep their defaults
    assert "max_layer_bytes" not in kw  # taken out: the commands pass the rest on


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--max-layer-entries", "0", "not in the range"),
        ("--max-layer-entries", "many", "not a valid integer"),
        ("--max-layer-bytes", "0", "at least 1 byte"),
        ("--max-layer-bytes", "12X", "bad size '12X'"),
        ("--max-layer-bytes", "-5M", "bad size"),
        ("--max-path-length", "-1", "not in the range"),
    ],
)
def test_bad_caps_exit_2_before_any_work(
    command: str, option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, *COMMANDS[command], option, value])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert option in err
    assert says in err
    assert "Traceback" not in err
