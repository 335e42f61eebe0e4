"""Times as the API writes them."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with `Z` for UTC (`2026-01-02T03:04:05.678901Z`); None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None
