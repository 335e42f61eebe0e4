"""Policies as code: apply_policies makes the store equal to a file, one event per change."""

import json

import pytest
from django.core.management import CommandError, call_command

from memoryhub.actors import SYSTEM
from memoryhub.errors import Invalid
from memoryhub.events.models import Event
from policies.models import DeferenceRule, FieldOwnership, NamespacePolicy
from policies.selectors import policies_export
from policies.services import policies_apply

DOC = {
    "namespaces": [
        {"pattern": "code:review", "readers": ["*"], "writers": ["code-review", "lead"], "write_mode": "optimistic"},
        {"pattern": "agent:private:*", "readers": ["self"], "writers": ["self"]},
        {"pattern": "inventory:*", "readers": ["*"], "writers": ["inventory", "orders"], "write_mode": "locked"},
    ],
    "fields": [{"namespace": "customer:*", "field": "deal_stage", "owners": ["sales"]}],
    "deference": [{"resource": "customer:*", "role": "sales", "defers_to": "support", "window_seconds": 300}],
}


def write(tmp_path, document) -> str:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(document))
    return str(path)


def policy_events():
    return list(Event.objects.filter(type="policy.changed").order_by("seq"))


@pytest.mark.django_db
def test_apply_adds_every_entry_with_one_event_each(tmp_path):
    call_command("apply_policies", write(tmp_path, DOC))
    assert NamespacePolicy.objects.count() == 3
    assert FieldOwnership.objects.count() == 1
    assert DeferenceRule.objects.count() == 1
    assert len(policy_events()) == 5
    assert NamespacePolicy.objects.get(pattern="agent:private:*").write_mode == "optimistic"  # default


@pytest.mark.django_db
def test_export_round_trips_and_reapplying_changes_nothing(tmp_path, capsys):
    call_command("apply_policies", write(tmp_path, DOC))
    capsys.readouterr()
    call_command("export_policies")
    exported = json.loads(capsys.readouterr().out)
    before = len(policy_events())
    call_command("apply_policies", write(tmp_path, exported))
    assert len(policy_events()) == before
    assert policies_export() == exported


@pytest.mark.django_db
def test_apply_changes_and_removes_to_match_the_file(tmp_path):
    policies_apply(actor=SYSTEM, document=DOC)
    changed = {**DOC, "namespaces": [{**DOC["namespaces"][0], "writers": ["lead"]}], "deference": []}
    changes = policies_apply(actor=SYSTEM, document=changed)
    assert sorted((c.kind, c.action) for c in changes) == [
        ("deference", "removed"),
        ("namespaces", "changed"),
        ("namespaces", "removed"),
        ("namespaces", "removed"),
    ]
    assert list(NamespacePolicy.objects.values_list("pattern", "writers")) == [("code:review", ["lead"])]
    last = policy_events()[-1]
    assert last.actor_kind == "system"


@pytest.mark.django_db
def test_dry_run_prints_the_diff_and_changes_nothing(tmp_path, capsys):
    call_command("apply_policies", write(tmp_path, DOC), "--dry-run")
    out = capsys.readouterr().out
    assert "+ namespaces code:review" in out
    assert "would change" in out
    assert NamespacePolicy.objects.count() == 0
    assert not policy_events()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("document", "names"),
    [
        ({"namespaces": [DOC["namespaces"][0], {"pattern": "x:*", "write_mode": "sometimes"}]}, "namespaces[1]"),
        ({"namespaces": [{"pattern": "", "readers": ["*"]}]}, "namespaces[0]"),
        ({"fields": [{"namespace": "customer:*", "field": "deal_stage", "owners": []}]}, "fields[0]"),
        (
            {"deference": [{"resource": "customer:*", "role": "sales", "defers_to": "support", "window_seconds": -1}]},
            "deference[0]",
        ),
        ({"namespaces": [{"pattern": "a", "readers": "sales"}]}, "namespaces[0]"),
        ({"namespaces": [{"pattern": "a", "owner": ["x"]}]}, "namespaces[0]"),
        ({"namespaces": [{"pattern": "a"}, {"pattern": "a"}]}, "namespaces[1]"),
        ({"policies": []}, "unknown top-level"),
    ],
)
def test_an_invalid_file_changes_nothing_and_names_the_entry(tmp_path, document, names):
    policies_apply(actor=SYSTEM, document=DOC)
    before = (policies_export(), len(policy_events()))
    with pytest.raises(CommandError, match=names.replace("[", r"\[").replace("]", r"\]")):
        call_command("apply_policies", write(tmp_path, document))
    assert (policies_export(), len(policy_events())) == before


@pytest.mark.django_db
def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{nope")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("apply_policies", str(path))


@pytest.mark.django_db
def test_invalid_document_raises_invalid_in_the_service():
    with pytest.raises(Invalid):
        policies_apply(actor=SYSTEM, document=[])


@pytest.mark.django_db
def test_admin_edits_go_through_the_service_and_are_events(admin_client):
    response = admin_client.post(
        "/admin/policies/namespacepolicy/add/",
        {"pattern": "docs:*", "readers": "*", "writers": "docs, lead", "write_mode": "optimistic", "description": ""},
    )
    assert response.status_code == 302, response.content[:500]
    policy = NamespacePolicy.objects.get(pattern="docs:*")
    assert policy.writers == ["docs", "lead"]
    event = policy_events()[-1]
    assert event.actor_kind == "human" and event.actor_id == "admin"
    assert event.after["writers"] == ["docs", "lead"]

    response = admin_client.post(f"/admin/policies/namespacepolicy/{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not NamespacePolicy.objects.filter(pattern="docs:*").exists()
    assert policy_events()[-1].before["pattern"] == "docs:*"
