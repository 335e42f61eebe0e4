"""Small template helpers: JSON shown readably, times in UTC, links to what an event is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def compact_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "…"


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return parse_datetime(value.replace("Z", "+00:00"))
    return None


@register.filter
def when(value: Any) -> str:
    """A <time> in UTC (the dashboard's one time zone): the time alone if today, else date and time;
    the full moment and how long ago in its title."""
    moment = _moment(value)
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    today = timezone.now().astimezone(UTC).date() == moment.date()
    return format_html(
        '<time datetime="{}" title="{} UTC, {}">{}</time>',
        moment.isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        _ago_text(moment),
        moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M"),
    )


def _ago_text(moment: datetime) -> str:
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return timesince(moment).split(",")[0] + " ago"


@register.filter
def ago(value: Any) -> str:
    moment = _moment(value)
    if moment is None:
        return "never"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        _ago_text(moment),
    )


@register.simple_tag
def memory_url(resource: str) -> str:
    """`<namespace>/<key>` (or its lock name `memory:<namespace>/<key>`) -> the memory's page."""
    namespace, _, key = resource.removeprefix("memory:").partition("/")
    return reverse("dashboard:memory", args=[namespace, key]) if namespace and key else ""


@register.simple_tag
def event_target(event) -> str:
    """Where an event's resource links to: a memory's page, else the log filtered on the resource."""
    resource = event.resource if hasattr(event, "resource") else event.get("resource", "")
    kind = event.type if hasattr(event, "type") else event.get("type", "")
    if kind.startswith("memory.") or kind == "conflict.rejected":
        url = memory_url(resource)
        if url:
            return url
    return reverse("dashboard:events") + "?" + urlencode({"resource": resource}) if resource else ""


@register.filter
def actor_label(event) -> str:
    kind, ident = event.actor_kind, event.actor_id
    return ident if kind == "agent" else f"{kind}:{ident}"


@register.filter
def family(event_type: str) -> str:
    """The first part of an event type (memory, lock, ...), used for its colour."""
    return (event_type or "").split(".", 1)[0]
