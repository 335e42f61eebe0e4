from __future__ import annotations

from django.db import connection
from django.db.models import Sum

from .models import Tally


def kept() -> bool:
    """Whether the database keeps tallies (PostgreSQL); elsewhere the callers count."""
    return connection.vendor == "postgresql"


def tallies(prefix: str) -> dict[str, int]:
    """The tallies named `<prefix>.<name>`, by name."""
    rows = Tally.objects.filter(name__startswith=f"{prefix}.").values("name").annotate(total=Sum("n"))
    return {row["name"].removeprefix(f"{prefix}."): row["total"] for row in rows}


def tally(name: str) -> int:
    return Tally.objects.filter(name=name).aggregate(total=Sum("n"))["total"] or 0
