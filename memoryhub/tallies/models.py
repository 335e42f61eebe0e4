from django.db import models


class Tally(models.Model):
    """One connection's share of a count (see the package docstring). Shard 0 holds what has been
    folded from connections that have gone."""

    pk = models.CompositePrimaryKey("name", "shard")
    name = models.CharField(max_length=40)
    shard = models.IntegerField()
    n = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.name}[{self.shard}] = {self.n}"
