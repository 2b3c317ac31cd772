"""The entry point: run the `ducc` group and map what happened to an exit code (0 ok, 1 some
work failed, 2 bad input or usage, 130 interrupted); a traceback only with `--debug`."""

from __future__ import annotations

import gc
import sys
import traceback
from typing import NoReturn

import click

from ducc import log
from ducc.cli.compat import lift_global_options
from ducc.cli.group import cli, debug_enabled
from ducc.errors import DuccError, ExitCode


def _run(argv: list[str] | None) -> int:
    args = lift_global_options(sys.argv[1:] if argv is None else list(argv))
    try:
        result = cli.main(args=args, prog_name="ducc", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code
    except DuccError as exc:
        click.echo(f"error: {log.redact(exc.message)}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        if debug_enabled():
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    return result if isinstance(result, int) else ExitCode.OK


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point (`argv` given: called from another program)."""
    own_process = argv is None
    cli.settle = own_process
    try:
        code = _run(argv)
    except Exception as exc:  # an unexpected bug: say so, show the traceback only on request
        click.echo(f"error: unexpected {type(exc).__name__}: {log.redact(str(exc))}", err=True)
        if debug_enabled():
            traceback.print_exc()
        else:
            click.echo("hint: run again with --debug for the traceback", err=True)
        code = ExitCode.FAILED
    if own_process:
        # What is left is freed at exit anyway: spare the interpreter's final collections a
        # walk over every object of the loaded modules (about 30 ms after a conversion).
        gc.freeze()
    sys.exit(int(code))
