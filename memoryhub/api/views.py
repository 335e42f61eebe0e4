"""The base class of every REST view: authentication from settings, errors in the spec's shape, and
Idempotency-Key handling for writes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from memoryhub.context import Caller
from memoryhub.errors import Conflict, IdempotencyKeyReused, Invalid, Unauthenticated

from .models import IdempotencyRecord

# Responses a retry with the same key must see again. Others (lock held, held, throttled, forbidden,
# not found...) depend on state that may change, so a retry is processed afresh.
STORED_STATUSES = {400, 412, 413, 428}


class IdempotentReplay(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record


def _fingerprint(request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.get_full_path().encode() + b"\n")
    digest.update(request._request.body)
    return digest.hexdigest()


class HubView(APIView):
    """Writes with an `Idempotency-Key` run in one transaction that first claims the key (a unique
    row): a concurrent duplicate waits on that row, then replays the stored response."""

    _idempotency_key = ""
    _idempotency_record: IdempotencyRecord | None = None

    @property
    def actor(self) -> Caller:
        """The request context the authentication class built (memoryhub.context), carrying the
        request's Idempotency-Key for the events it appends."""
        caller = self.request.auth
        if not isinstance(caller, Caller):
            raise Unauthenticated()
        if self._idempotency_key and caller.idempotency_key != self._idempotency_key:
            caller = caller.with_idempotency_key(self._idempotency_key)
            self.request.auth = caller
        return caller

    def dispatch(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "")
        if request.method in SAFE_METHODS or not key:
            return super().dispatch(request, *args, **kwargs)
        self._idempotency_key = key
        self._idempotency_record = None  # claimed anew by each pass (a lock wait makes several)
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            record = self._idempotency_record
            if record is not None:
                if response.status_code < 300 or response.status_code in STORED_STATUSES:
                    if hasattr(response, "render"):
                        response.render()
                    record.status_code = response.status_code
                    record.response_body = self.stored_content(response)
                    record.content_type = response.get("Content-Type", "application/json")
                    record.save(update_fields=["status_code", "response_body", "content_type"])
                else:
                    record.delete()
        return response

    def stored_content(self, response) -> bytes:
        """What the key's record keeps of the first response (and replays): all of it, unless the view
        holds back a secret that must not be kept server-side."""
        return response.content

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            request.data  # noqa: B018  # parse the body (a 400 for what cannot be stored) even where unused
        if self._idempotency_key:
            self._claim_idempotency_key(request)

    def _claim_idempotency_key(self, request) -> None:
        key = self._idempotency_key
        if len(key) > 255:
            raise Invalid("Idempotency-Key is longer than 255 characters")
        principal = self.actor.label
        fingerprint = _fingerprint(request)
        cutoff = timezone.now() - timedelta(seconds=settings.MEMORYHUB_IDEMPOTENCY_TTL_SECONDS)
        IdempotencyRecord.objects.filter(principal=principal, key=key, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic():
                self._idempotency_record = IdempotencyRecord.objects.create(
                    principal=principal, key=key, fingerprint=fingerprint
                )
            return
        except IntegrityError:
            pass
        # Someone used the key first; on PostgreSQL the insert above waited for their commit.
        record = IdempotencyRecord.objects.get(principal=principal, key=key)
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key=key)
        if record.status_code is None:
            raise Conflict("A request with this Idempotency-Key is still in progress.", key=key)
        raise IdempotentReplay(record)

    def handle_exception(self, exc):
        if isinstance(exc, IdempotentReplay):
            record = exc.record
            response = HttpResponse(
                bytes(record.response_body), status=record.status_code, content_type=record.content_type
            )
            response["Idempotent-Replayed"] = "true"
            return response
        return super().handle_exception(exc)
