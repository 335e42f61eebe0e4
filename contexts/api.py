"""REST adapters of the context inbox: parse, call a service or selector, shape the response."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from memoryhub.api.params import int_param
from memoryhub.api.schema import AGENT_ID_PATTERN, CONTEXT_TYPE_PATTERN, ROLE_PATTERN, errors, integer
from memoryhub.api.serializers import CheckedText, JSONObjectField, StrictSerializer, validated
from memoryhub.api.views import HubView

from . import services
from .selectors import (
    INBOX_STATES,
    MAX_ID,
    MAX_PAGE,
    context_get,
    contexts_list,
    entry_to_dict,
    inbox_list,
    inbox_owner,
    receipt_to_dict,
)


class SendInput(StrictSerializer):
    """The sender is the authenticated caller: `from_agent`, `from_role` or `sender` here is a 400."""

    schema_rules = {"oneOf": [{"required": ["to_role"]}, {"required": ["to_agent"]}]}

    to_role = CheckedText(
        ROLE_PATTERN,
        required=False,
        max_length=100,
        help_text="exactly one of to_role, to_agent",
    )
    to_agent = CheckedText(AGENT_ID_PATTERN, required=False, max_length=100)
    context_type = CheckedText(CONTEXT_TYPE_PATTERN, max_length=100, help_text="e.g. escalation, handoff, note")
    subject = serializers.CharField(required=False, allow_blank=True, max_length=600, default="")
    content = JSONObjectField()
    ttl_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=services.MAX_TTL_SECONDS
    )
    requires_ack = serializers.BooleanField(required=False, default=False)
    reply_to = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID)


class ReadInput(StrictSerializer):
    """No fields: reading is idempotent and carries nothing."""


class AckInput(StrictSerializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    on_behalf_of = serializers.CharField(
        required=False, max_length=100, help_text="humans only: the recipient agent to ack for"
    )


class BulkAckInput(AckInput):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), min_length=1, max_length=services.MAX_BULK_ACK
    )


class ReceiptOutput(serializers.Serializer):
    entry = serializers.IntegerField()
    agent = serializers.CharField()
    read_at = serializers.DateTimeField(allow_null=True)
    acked_at = serializers.DateTimeField(allow_null=True)
    ack_note = serializers.CharField()
    seq = serializers.IntegerField(
        allow_null=True, required=False, help_text="Seq of the event this write produced; null if it changed nothing."
    )


class EntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    from_agent = serializers.CharField(allow_null=True)
    from_role = serializers.CharField()
    sender = serializers.CharField()
    to_role = serializers.CharField(allow_null=True)
    to_agent = serializers.CharField(allow_null=True)
    namespace = serializers.CharField()
    context_type = serializers.CharField()
    subject = serializers.CharField()
    content = serializers.JSONField()
    requires_ack = serializers.BooleanField()
    reply_to = serializers.IntegerField(allow_null=True)
    thread_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    expired_at = serializers.DateTimeField(allow_null=True)


class SentOutput(EntryOutput):
    seq = serializers.IntegerField(help_text="Seq of the context.sent event.")


class EntryDetailOutput(EntryOutput):
    receipts = ReceiptOutput(many=True)


class InboxItemOutput(EntryOutput):
    receipt = ReceiptOutput()


class EntryListItemOutput(EntryOutput):
    receipt_counts = serializers.DictField(child=serializers.IntegerField(), help_text="recipients, read, acked")


class EntryPageOutput(serializers.Serializer):
    results = EntryListItemOutput(many=True)
    next_since = serializers.IntegerField(help_text="pass as `since` for the next page")


class InboxPageOutput(serializers.Serializer):
    results = InboxItemOutput(many=True)
    next_since = serializers.IntegerField(help_text="pass as `since` for the next page")


class BulkAckOutput(serializers.Serializer):
    results = ReceiptOutput(many=True)
    seq = serializers.IntegerField(allow_null=True, help_text="Seq of the last event written; null if none.")
    seqs = serializers.ListField(child=serializers.IntegerField())


def _written_receipt(receipt, event) -> Response:
    return Response({**receipt_to_dict(receipt), "seq": event.seq if event else None})


class ContextListView(HubView):
    """GET: entries the caller may see (sender, addressee, policy readers of `inbox:<role>`; humans
    all), ascending by id. POST: send an entry to a role or an agent; the sender is the caller."""

    @extend_schema(
        operation_id="contexts_list",
        parameters=[
            OpenApiParameter("from_role", str),
            OpenApiParameter("to_role", str),
            OpenApiParameter("from_agent", str),
            OpenApiParameter("to_agent", str),
            OpenApiParameter("context_type", str),
            OpenApiParameter(
                "thread", integer(1, MAX_ID), description="entries of the thread started by this entry id"
            ),
            OpenApiParameter("since", integer(0, MAX_ID), description="entries with an id greater than this"),
            OpenApiParameter("limit", integer(1, MAX_PAGE)),
        ],
        responses=EntryPageOutput,
    )
    def get(self, request):
        params = request.query_params
        thread = params.get("thread")
        results, cursor = contexts_list(
            actor=self.actor,
            from_role=params.get("from_role") or None,
            to_role=params.get("to_role") or None,
            from_agent=params.get("from_agent") or None,
            to_agent=params.get("to_agent") or None,
            context_type=params.get("context_type") or None,
            thread_id=int_param(params, "thread", 0, low=1, high=MAX_ID) if thread else None,
            since=int_param(params, "since", 0, high=MAX_ID),
            limit=int_param(params, "limit", 100, low=1, high=MAX_PAGE),
        )
        return Response({"results": results, "next_since": cursor})

    @extend_schema(request=SendInput, responses={201: SentOutput})
    def post(self, request):
        data = validated(SendInput, request)
        entry, event = services.context_send(
            actor=self.actor,
            to_role=data.get("to_role"),
            to_agent=data.get("to_agent"),
            context_type=data["context_type"],
            subject=data["subject"],
            content=data["content"],
            ttl_seconds=data.get("ttl_seconds"),
            requires_ack=data["requires_ack"],
            reply_to=data.get("reply_to"),
        )
        return Response({**entry_to_dict(entry), "seq": event.seq}, status=status.HTTP_201_CREATED)


class ContextDetailView(HubView):
    """An entry with every recipient's receipt; 404 for callers who may not see it."""

    @extend_schema(responses=EntryDetailOutput)
    def get(self, request, entry_id: int):
        return Response(context_get(actor=self.actor, entry_id=entry_id))


class ContextReadView(HubView):
    """Mark the caller's receipt read. Idempotent: a repeat changes nothing (`seq` null)."""

    @extend_schema(request=ReadInput, responses=ReceiptOutput)
    def post(self, request, entry_id: int):
        validated(ReadInput, request)
        return _written_receipt(*services.context_read(actor=self.actor, entry_id=entry_id))


class ContextAckView(HubView):
    """Acknowledge (and read) an entry; humans may ack `on_behalf_of` a recipient. Idempotent."""

    @extend_schema(request=AckInput, responses=ReceiptOutput)
    def post(self, request, entry_id: int):
        data = validated(AckInput, request)
        return _written_receipt(
            *services.context_ack(
                actor=self.actor, entry_id=entry_id, note=data["note"], on_behalf_of=data.get("on_behalf_of")
            )
        )


class InboxView(HubView):
    """Entries addressed to the caller (or its role when sent), not expired, oldest first, each with
    the caller's receipt. Listing changes nothing."""

    @extend_schema(
        operation_id="inbox_list",
        parameters=[
            OpenApiParameter("state", str, enum=list(INBOX_STATES), description="default unread"),
            OpenApiParameter("context_type", str),
            OpenApiParameter("since", integer(0, MAX_ID), description="entries with an id greater than this"),
            OpenApiParameter("limit", integer(1, MAX_PAGE)),
            OpenApiParameter("agent", str, description="humans: whose inbox to look at"),
        ],
        responses=InboxPageOutput,
    )
    def get(self, request):
        params = request.query_params
        since = int_param(params, "since", 0, high=MAX_ID)
        results = inbox_list(
            agent_id=inbox_owner(actor=self.actor, agent_id=params.get("agent") or None),
            state=params.get("state") or "unread",
            context_type=params.get("context_type") or None,
            since=since,
            limit=int_param(params, "limit", 100, low=1, high=MAX_PAGE),
        )
        return Response({"results": results, "next_since": results[-1]["id"] if results else since})


class InboxAckView(HubView):
    """Ack many entries of the caller's inbox: all or nothing (404 lists ids not in it)."""

    @extend_schema(request=BulkAckInput, responses={200: BulkAckOutput, **errors(404)})
    def post(self, request):
        data = validated(BulkAckInput, request)
        receipts, events = services.contexts_ack_bulk(
            actor=self.actor, ids=data["ids"], note=data["note"], on_behalf_of=data.get("on_behalf_of")
        )
        return Response(
            {
                "results": [receipt_to_dict(r) for r in receipts],
                "seq": events[-1].seq if events else None,
                "seqs": [e.seq for e in events],
            }
        )
