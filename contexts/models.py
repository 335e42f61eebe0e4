from django.db import models
from django.db.models import Q


class ContextEntry(models.Model):
    """A directional message from an agent (or human) to a role or one agent. The sender fields are
    set from the authenticated caller only."""

    from_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="sent_entries"
    )
    from_role = models.CharField(max_length=100)
    sender = models.CharField(max_length=160, help_text="Actor label of the sender (agent id or human:<name>).")
    to_role = models.CharField(max_length=100, blank=True)
    to_agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="direct_entries"
    )
    namespace = models.CharField(max_length=255, help_text="inbox:<to_role> or inbox:agent:<to_agent>")
    context_type = models.CharField(max_length=100)
    subject = models.CharField(max_length=600, blank=True)
    content = models.JSONField(default=dict)
    requires_ack = models.BooleanField(default=False)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replies")
    thread_id = models.BigIntegerField(null=True, blank=True, help_text="Id of the first entry of the thread.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When the sweeper recorded its expiry.")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["to_role", "id"], name="entry_to_role"),
            models.Index(fields=["to_agent", "id"], name="entry_to_agent"),
            models.Index(fields=["from_role", "to_role", "id"], name="entry_direction"),
            models.Index(fields=["from_agent", "id"], name="entry_from_agent"),
            models.Index(fields=["expires_at"], condition=Q(expired_at=None), name="entry_pending_expiry"),
            models.Index(fields=["thread_id", "id"], condition=Q(thread_id__isnull=False), name="entry_thread"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(to_role="") & Q(to_agent__isnull=False)) | (~Q(to_role="") & Q(to_agent__isnull=True)),
                name="entry_one_recipient",
            )
        ]
        verbose_name_plural = "context entries"

    def __str__(self) -> str:
        target = self.to_role or f"@{self.to_agent_id}"
        return f"#{self.id} {self.context_type} {self.from_role}->{target}"


class Receipt(models.Model):
    """One recipient agent's view of an entry. Made for every recipient when the entry is sent, so an
    inbox query is an index range on (agent, unread) however large the entry table grows."""

    entry = models.ForeignKey(ContextEntry, on_delete=models.CASCADE, related_name="receipts")
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="receipts")
    read_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    ack_note = models.TextField(blank=True)
    # A copy of "the entry's expiry was recorded", set by the sweeper. The inbox indexes leave these
    # rows out, so an agent that never reads does not make its inbox query walk every expired entry.
    entry_expired = models.BooleanField(default=False)
    # A copy of the entry's requires_ack (which never changes): "awaiting an ack" is then a partial
    # index of receipts, not a join to every entry (the dashboard's backlog: 20 ms -> 1 ms at 200,000).
    requires_ack = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "entry"], name="uniq_receipt")]
        indexes = [
            models.Index(
                fields=["agent", "entry"], condition=Q(read_at=None, entry_expired=False), name="receipt_unread_live"
            ),
            models.Index(
                fields=["agent", "entry"], condition=Q(acked_at=None, entry_expired=False), name="receipt_unacked_live"
            ),
            models.Index(fields=["agent", "entry"], condition=Q(entry_expired=False), name="receipt_live"),
            models.Index(
                fields=["agent"],
                condition=Q(acked_at=None, entry_expired=False, requires_ack=True),
                name="receipt_awaiting_ack",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} on #{self.entry_id}"
