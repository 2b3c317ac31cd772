"""Talking to container registries: one client per registry (`client`, the request
chokepoint, with `authorizer`, `timing`, `session` and `settings`), tag lists, manifests
and blobs.

May import the top-level leaf modules, `ducc.oci` and `ducc.recipe`; never the layer engine,
a publisher or the repository.
"""
