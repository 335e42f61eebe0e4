from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a write sent with an Idempotency-Key, kept 24 h per caller and key.
    A row without a status is a request still in progress (its transaction holds the row)."""

    principal = models.CharField(max_length=160)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="uniq_idempotency_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]
