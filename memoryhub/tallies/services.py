from __future__ import annotations

from django.db import transaction

from memoryhub import sql

from . import queries
from .models import Tally
from .selectors import kept


def tallies_fold() -> int:
    """Fold the rows of connections that have gone into shard 0; how many tallies took some."""
    return sql.execute(queries.FOLD, ()) if kept() else 0


def tallies_recount() -> None:
    """Count every tally afresh (after a load that bypassed the triggers; see queries.RECOUNT)."""
    if kept():
        with transaction.atomic():
            Tally.objects.all().delete()
            sql.execute(queries.RECOUNT, ())
