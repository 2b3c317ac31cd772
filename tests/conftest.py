"""Shared pytest setup: `tests/` is importable, so helpers live in `tests/support/`."""
