from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

# \Z, not $: `$` also matches before a final newline ("p1\n" would twin "p1").
AGENT_ID_RE = r"\A[a-z0-9][a-z0-9._-]{0,99}\Z"
ROLE_RE = r"\A[a-z0-9][a-z0-9._-]{0,99}\Z"


class AgentStatus(models.TextChoices):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Agent(models.Model):
    """A program with a role. Its id is its name. Used as DRF's `request.user` for token requests."""

    id = models.CharField(primary_key=True, max_length=100, validators=[RegexValidator(AGENT_ID_RE)])
    role = models.CharField(max_length=100, validators=[RegexValidator(ROLE_RE)])
    status = models.CharField(max_length=10, choices=AgentStatus.choices, default=AgentStatus.ACTIVE)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["role"], name="agent_role")]

    def __str__(self) -> str:
        return f"{self.id} ({self.role})"

    def clean(self) -> None:
        from .names import reserved_name_errors

        if errors := reserved_name_errors(agent_id=self.id, role=self.role):
            raise ValidationError(errors)

    # DRF treats request.user as a user: an authenticated agent is one, but never staff.
    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    @property
    def name(self) -> str:
        return self.id

    @property
    def is_suspended(self) -> bool:
        return self.status == AgentStatus.SUSPENDED


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: stored digests are useless to a thief.
    return hashlib.sha256(token.encode()).hexdigest()


class AgentToken(models.Model):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tokens")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to recognise it.")
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.prefix}… ({self.agent_id}, {state})"
