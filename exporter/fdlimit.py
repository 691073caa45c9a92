"""Raise the soft open-files limit to the hard one: every held connection is a file descriptor.

With an event-loop server the limit on idle connections is the descriptor limit, not a thread pool;
a default soft limit of 1024 would let a few hundred hostile sockets per listener refuse real clients.
"""

from __future__ import annotations

import logging

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CEILING = 1 << 20  # used when the hard limit is "unlimited" (the kernel's usual nr_open)


def raise_open_files_limit() -> int | None:
    """Lift the soft RLIMIT_NOFILE as far as the hard limit allows; the limit now in force (None: unknown)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-files limit stays at %d (could not raise it to %d: %s)", soft, target, exc)
            return soft
        log.info("open-files limit raised from %d to %d (each held connection needs one)", soft, target)
        return target
    return soft
