"""How a registry client behaves: timeouts, deadlines, minimum rates, retries, waits and
concurrency, one frozen value for every registry (`DUCC_REGISTRY_*` override the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from ducc import __version__


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # A request with all its attempts and backoffs, until its answer is complete (a blob's
    # body instead must keep up `min_rate`, however long it is).
    deadline: float = 120.0
    min_rate: float = 1024.0  # bytes/s every body must reach over `rate_window`; 0: no check
    rate_window: float = 30.0
    retry_attempts: int = 5  # attempts in all, for transient faults only
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    max_wait: float = 300.0  # Retry-After and rate-limit waits obeyed per request; beyond: fail
    max_concurrent: int = 5  # requests in flight per registry
    page_cap: int = 500  # tag list pages
    tags_page_size: int | None = None  # `n` on the first tag list request; None: registry's
    user_agent: str = f"ducc/{__version__}"
