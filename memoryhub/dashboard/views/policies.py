"""/policies/: a readable summary of who may read and write what, field owners and deference rules,
with links to edit them in admin, and a check of what one role (or agent) may do in a namespace."""

from __future__ import annotations

from django.views.decorators.http import require_GET

from memoryhub.actors import Actor
from memoryhub.agents.models import Agent
from policies.decide import decide_read, decide_write
from policies.models import DeferenceRule, FieldOwnership, NamespacePolicy
from policies.selectors import policy_set

from ..access import staff_required
from ..forms import AccessCheckForm
from ..selectors import access_matrix, describe_roles, roles_known
from .common import page

WRITE_MODES = {
    "optimistic": "optimistic — an update must name the version it read (If-Match); a stale one is refused",
    "last_write_wins": "last write wins — unconditional writes",
    "locked": "locked — the writer must hold the exclusive lock and present its fencing token",
}


def _roles_in(policies) -> list[str]:
    named: set[str] = set(roles_known())
    for rule in policies.namespaces:
        named |= set(rule.readers) | set(rule.writers)
    for rule in policies.fields:
        named |= set(rule.owners)
    for rule in policies.deference:
        named |= {rule.role, rule.defers_to}
    return sorted(named - {"*", "self"})


def _check(form: AccessCheckForm, policies):
    if not form.is_valid():
        return None
    data = form.cleaned_data
    role, agent, namespace = data["role"].strip(), data["agent"].strip(), data["namespace"]
    if not namespace or not (role or agent):
        return None
    if agent and not role:
        role = Agent.objects.filter(id=agent).values_list("role", flat=True).first() or ""
    actor = Actor(kind="agent", id=agent or "(any agent)", role=role)
    return {
        "role": role,
        "agent": agent,
        "namespace": namespace,
        "read": decide_read(policies, actor, namespace),
        "write": decide_write(policies, actor, namespace),
    }


@require_GET
@staff_required
def policy_summary(request):
    policies = policy_set()
    roles = _roles_in(policies)
    rows = {row.pattern: row for row in NamespacePolicy.objects.all()}
    namespaces = [
        {
            "rule": rule,
            "row": rows.get(rule.pattern),
            "readers": describe_roles(rule.readers),
            "writers": describe_roles(rule.writers),
            "mode": WRITE_MODES.get(rule.write_mode, rule.write_mode),
        }
        for rule in policies.namespaces
    ]
    form = AccessCheckForm(request.GET)
    return page(
        request,
        "dashboard/policies.html",
        {
            "nav": "policies",
            "namespaces": namespaces,
            "roles": roles,
            "matrix": access_matrix(policies, roles),
            "fields": FieldOwnership.objects.all(),
            "deference": DeferenceRule.objects.all(),
            "form": form,
            "check": _check(form, policies),
        },
        status=200 if form.is_valid() else 400,
    )
