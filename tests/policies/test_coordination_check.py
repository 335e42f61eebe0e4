import io

from django.core.management import call_command

from memoryhub.actors import SYSTEM
from memoryhub.memories.services import memory_put
from policies.services import policies_apply


def run_check() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("coordination_check", stdout=out)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue()


def test_a_sound_configuration_passes_every_check(policies, make_agent, human, settings):
    from django.core.cache import cache
    from django.utils import timezone

    from memoryhub.sweepers import LAST_SWEEP_KEY

    # A production-like configuration, whichever database the suite runs on.
    settings.SECRET_KEY = "a-real-secret-key-for-this-test-only-0123456789"
    settings.REDIS_URL = settings.REDIS_URL or "redis://127.0.0.1:6379/15"
    cache.set(LAST_SWEEP_KEY, timezone.now())
    for agent_id, role in (
        ("sales-1", "sales"),
        ("support-1", "support"),
        ("product-1", "product"),
        ("code-review-1", "code-review"),
        ("docs-1", "docs"),
        ("inventory-1", "inventory"),
        ("orders-1", "orders"),
        ("lead-1", "lead"),
    ):
        make_agent(agent_id, role)
    code, out = run_check()
    assert code == 0, out
    lines = out.strip().splitlines()
    assert all(line.startswith("✓") for line in lines[:-2]), out
    for name in (
        "default deny",
        "shared resources mapped to writers",
        "TTL on every lock",
        "idempotent writes",
        "alerting",
        "kill switch",
    ):
        assert f"✓ {name}" in out


def test_problems_are_named_with_their_fix(db, make_agent):
    policies_apply(
        actor=SYSTEM,
        document={
            "namespaces": [
                {"pattern": "*", "readers": ["*"], "writers": ["*"]},
                {"pattern": "notes:*", "readers": ["*"], "writers": ["writter"]},
            ]
        },
    )
    writer = make_agent("w-1", "writer")
    memory_put(actor=writer.actor, namespace="orphan:x", key="k", content={})
    code, out = run_check()
    assert code == 1
    assert "✗ default deny" in out and "fix:" in out
    assert "✗ idempotent writes" in out and "w-1" in out
    assert "✗ kill switch" in out and "createsuperuser" in out
    assert "✗ policies name real roles" in out and "writter" in out
