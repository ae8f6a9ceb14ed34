"""Per-user limit on directory look-ups (completion and search): DIRECTORY_SEARCH_RATE_PER_MINUTE.

A fixed one-minute window counted in the cache (Redis in production, shared by every worker):
enough to stop a script walking the directory or testing INS keys, invisible to a person typing.
"""

import time

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60


def allow(user_id: int, scope: str = "lookup") -> bool:
    """Count one look-up for `user_id`; False once the minute's allowance is spent."""
    window = int(time.time() // WINDOW_SECONDS)
    key = f"directory:rate:{scope}:{user_id}:{window}"
    if cache.add(key, 1, timeout=90):
        return True
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=90)
        return True
    return count <= settings.DIRECTORY_SEARCH_RATE_PER_MINUTE


def retry_after() -> int:
    """Seconds until the current window ends (the Retry-After of a refused look-up), 1 to 60."""
    return WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
