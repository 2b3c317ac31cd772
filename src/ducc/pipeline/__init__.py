"""The conversion pipeline: wishes expanded (`expansion`) and polled (`poller`), blobs
downloaded per registry lane (`lanes`, `blobcache`), images built (`builder`) and made
visible (`conversion`) or adopted from DUCC (`adopt`), a run's report (`report`); `convert`
drives it all. Also `unpack` (one image into a directory) and `prune` (what to unpublish).

May import every package below it (leaves, `oci`, `recipe`, `registry`, `layers`,
`publish`, `repository`); never `service` or `cli`.
"""
