"""The base class of every REST view: authentication from settings, errors in the spec's shape, and
Idempotency-Key handling for writes (the service is memoryhub/api/idempotency.py)."""

from __future__ import annotations

from datetime import datetime

from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from memoryhub.context import Caller
from memoryhub.errors import HubError, Unauthenticated

from . import idempotency


class HubView(APIView):
    """A write with an `Idempotency-Key` runs as an unkeyed one does (no transaction around it): its
    change's transaction records the key, and the answer is stored after (idempotency.settle). A
    view whose answer can be rebuilt from the events its write appended says how in `rebuild`."""

    _claim: idempotency.Claim | None = None
    _key_taken = False

    @property
    def actor(self) -> Caller:
        """The request context the authentication class built (memoryhub.context), carrying the
        request's Idempotency-Key and claim for the events it appends."""
        caller = self.request.auth
        if not isinstance(caller, Caller):
            raise Unauthenticated()
        if self._claim is not None and caller.idempotency_claim is not self._claim:
            caller = caller.with_idempotency_key(self._claim.key, self._claim)
            self.request.auth = caller
        return caller

    def dispatch(self, request, *args, **kwargs):
        if (
            request.method in SAFE_METHODS
            or not request.headers.get("Idempotency-Key")
            or not hasattr(self, request.method.lower())  # a 405, which claims no key
        ):
            return super().dispatch(request, *args, **kwargs)
        while True:
            self._claim, self._key_taken = None, False
            response = super().dispatch(request, *args, **kwargs)
            claim = self._claim
            if claim is None:  # refused before the key was read (authentication): nothing to keep
                return response
            try:
                return idempotency.settle(claim, response, taken=self._key_taken, rebuild=self._rebuilt)
            except idempotency.RunAgain:
                continue
            except HubError as error:
                return self.finalize_response(self.request, super().handle_exception(error))

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        key = request.headers.get("Idempotency-Key", "")
        if key and request.method not in SAFE_METHODS:
            self._claim = idempotency.Claim.of(
                principal=self.actor.label,
                key=key,
                method=request.method,
                path=request.get_full_path(),
                body=request._request.body,
            )
        if request.method not in SAFE_METHODS:
            request.data  # noqa: B018  # parse the body (a 400 for what cannot be stored) even where unused

    def rebuild(self, request, *, since: datetime) -> Response | None:
        """The answer of this request's write rebuilt from the events carrying its key (appended since
        `since`), for a repeat whose first request committed its change but never stored its answer;
        None (a 409 for the repeat) where the view cannot. Overridden by the views that can."""
        return None

    def _rebuilt(self, since: datetime):
        response = self.rebuild(self.request, since=since)
        return None if response is None else self.finalize_response(self.request, response)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.KeyTaken):
            # Another request holds the key: this one's change rolled back; settle() answers.
            self._key_taken = True
            return Response(status=409)
        return super().handle_exception(exc)
