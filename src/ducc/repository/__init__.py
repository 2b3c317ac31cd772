"""The repository's model: where products live (`layout`), when each is complete
(`products`), the records, links, metadata and podman store that make an image visible,
Apptainer's files, and the operations on what is published (`verify`, `deepcheck`, `gc`,
`unpublish`, `repair`, `rollback`).

May import the leaf modules, `oci`, `recipe`, `registry` (the manifests a record holds),
`layers` and `publish` (the publisher a transaction goes through); never the pipeline.
"""
