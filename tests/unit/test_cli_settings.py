"""Registry settings from `DUCC_REGISTRY_*`: defaults, overrides, refusals naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.cli.common import registry_settings
from ducc.errors import ExitCode, InputError
from ducc.registry.settings import RegistrySettings
from tests.unit.test_cli import run


def test_nothing_set_keeps_the_defaults() -> None:
    assert registry_settings({}) == RegistrySettings()
    assert registry_settings({"DUCC_REGISTRY_RETRIES": "  "}) == RegistrySettings()


def test_every_variable_sets_its_field() -> None:
    settings = registry_settings(
        {
            "DUCC_REGISTRY_CONNECT_TIMEOUT": "0.5",
            "DUCC_REGISTRY_READ_TIMEOUT": "2",
            "DUCC_REGISTRY_RETRIES": "3",
            "DUCC_REGISTRY_BACKOFF": "0",
            "DUCC_REGISTRY_BACKOFF_CAP": "0.25",
            "DUCC_REGISTRY_MAX_WAIT": "7.5",
        }
    )
    assert settings.connect_timeout == 0.5
    assert settings.read_timeout == 2.0
    assert settings.retry_attempts == 3
    assert isinstance(settings.retry_attempts, int)
    assert (settings.backoff_initial, settings.backoff_cap, settings.max_wait) == (0, 0.25, 7.5)
    assert settings.max_concurrent == RegistrySettings().max_concurrent


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DUCC_REGISTRY_CONNECT_TIMEOUT", "0"),
        ("DUCC_REGISTRY_READ_TIMEOUT", "-1"),
        ("DUCC_REGISTRY_READ_TIMEOUT", "soon"),
        ("DUCC_REGISTRY_READ_TIMEOUT", "inf"),
        ("DUCC_REGISTRY_RETRIES", "0"),
        ("DUCC_REGISTRY_RETRIES", "2.5"),
        ("DUCC_REGISTRY_BACKOFF", "nan"),
        ("DUCC_REGISTRY_BACKOFF_CAP", "-0.1"),
        ("DUCC_REGISTRY_MAX_WAIT", "1m"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(InputError) as info:
        registry_settings({name: value})
    assert name in str(info.value)
    assert repr(value) in str(info.value)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(InputError) as info:
        registry_settings({"DUCC_REGISTRY_RETRIES": "x", "DUCC_REGISTRY_MAX_WAIT": "y"})
    assert "DUCC_REGISTRY_RETRIES" in str(info.value)
    assert "DUCC_REGISTRY_MAX_WAIT" in str(info.value)


def test_the_command_line_exits_2_on_a_bad_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUCC_REGISTRY_READ_TIMEOUT", "forever")
    code, _, err = run(["expand", "-i", "127.0.0.1:1/team/app:1"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "DUCC_REGISTRY_READ_TIMEOUT='forever'" in err


def test_the_deadline_variables_set_their_fields() -> None:
    settings = registry_settings(
        {
            "DUCC_REGISTRY_DEADLINE": "30",
            "DUCC_REGISTRY_MIN_RATE": "0",
            "DUCC_REGISTRY_RATE_WINDOW": "5",
        }
    )
    assert (settings.deadline, settings.min_rate, settings.rate_window) == (30, 0, 5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DUCC_REGISTRY_DEADLINE", "0"),
        ("DUCC_REGISTRY_DEADLINE", "2m"),
        ("DUCC_REGISTRY_MIN_RATE", "-1"),
        ("DUCC_REGISTRY_MIN_RATE", "1k"),
        ("DUCC_REGISTRY_RATE_WINDOW", "0"),
    ],
)
def test_a_bad_deadline_variable_stops_the_command_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    code, _, err = run(["expand", "-i", "127.0.0.1:1/team/app:1"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert f"{name}={value!r}" in err


@pytest.mark.parametrize("value", ["soon", "0", "-5m"])
def test_a_bad_image_deadline_from_the_environment_is_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    value: str,
) -> None:
    monkeypatch.setenv("DUCC_IMAGE_DEADLINE", value)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\ncvmfs_repo: x.test\ninput:\n  - '127.0.0.1:1/team/app:1'\n")
    code, _, err = run(["convert", str(recipe), "--publisher", "dir"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert f"DUCC_IMAGE_DEADLINE={value!r}" in err
    code, _, err = run(["convert", str(recipe), "--image-deadline", "0s"], capsys)
    assert code == ExitCode.BAD_INPUT
    assert "--image-deadline" in err
