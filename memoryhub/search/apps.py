from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_index(sender, using, **kwargs) -> None:
    from django.db import connections

    from .schema import ensure

    ensure(connections[using])


class SearchConfig(AppConfig):
    name = "memoryhub.search"
    label = "search"
    verbose_name = "search"

    def ready(self) -> None:
        # After every migrate: SQLite drops a table's triggers when a migration rebuilds the table.
        post_migrate.connect(_ensure_index, sender=self, dispatch_uid="memoryhub.search.ensure_index")
