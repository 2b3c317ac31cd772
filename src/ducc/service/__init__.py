"""The service around the pipeline: `ducc loop` (`daemon`) with its `schedule`, the local
`state`, push `webhook`s, systemd notification (`sdnotify`), the Prometheus exposition of
the metrics (`prometheus`) and the signal handlers every long command installs (`signals`).

May import every package but `ducc.cli`; nothing below imports it.
"""
