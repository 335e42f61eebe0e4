"""Times as the API writes them, and the clock the memory lifecycle reads (injectable for tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.utils import timezone

_clock: Callable[[], datetime] = timezone.now


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with `Z` for UTC (`2026-01-02T03:04:05.678901Z`); None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def now() -> datetime:
    """The time as the memory lifecycle sees it (staleness, validity, summarizing): the wall clock,
    unless a test set another with `clock_at`."""
    return _clock()


@contextmanager
def clock_at(read: Callable[[], datetime]) -> Iterator[None]:
    """Within the block, `now()` is `read()` (in this process): a test steps time past a boundary
    without sleeping."""
    global _clock
    previous, _clock = _clock, read
    try:
        yield
    finally:
        _clock = previous
