from django.db import models


class IdempotencyRecord(models.Model):
    """A write sent with an Idempotency-Key, kept 24 h per caller and key (memoryhub/api/idempotency.py).

    The row is inserted in the transaction of the change the request makes (so it exists exactly when
    the change committed), `token` naming the request that claimed it; the response is stored right
    after, in a statement of its own. A row without a status is a change whose response is not stored
    yet (or was lost with its process: a retry rebuilds it from the events carrying the key)."""

    principal = models.CharField(max_length=160)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    token = models.CharField(max_length=32, blank=True, default="", db_default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="uniq_idempotency_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]
