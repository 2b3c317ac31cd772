"""Publishers: how products get into a repository (cvmfs_server transactions or a directory),
and the CernVM-FS catalog marker every publisher writes (`base.CATALOG_MARKER`).

May import the leaf modules, `oci`, `recipe` (a recipe's `cvmfs_repo`), `registry` (unused)
and `layers`; never the repository model above it, whose layout it names where it must
(`directory.STAGED`, kept equal to `repository.layout` by a test).
"""
