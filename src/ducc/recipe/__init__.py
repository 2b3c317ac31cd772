"""Recipes (DUCC's YAML wishlists): the model of what is wished (`model`), how a recipe file
is read and validated as a whole (`parser`, `nodes`, `options`) and where wishes publish
(`public_paths`).

May import the top-level leaf modules and `ducc.oci`; no I/O but reading the recipe files.
"""
