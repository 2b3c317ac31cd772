"""The command line: parse options, call one function, render the result, map errors to exits.

`main` is the entry point; `group` the `ducc` group, which imports a command's module only
when that command runs (start-up time: `ducc --version` loads click and little more).
Exit codes: 0 ok, 1 some work failed, 2 bad input or usage, 130 interrupted. Tracebacks
only with `--debug`. May import every package; nothing imports it but the entry points.
"""
