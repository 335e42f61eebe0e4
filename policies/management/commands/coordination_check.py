"""Audit the live configuration the way a reviewer of a multi-agent system would: one line per check,
✓ or ✗ with the fix. Exits 1 when a check fails."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management.base import BaseCommand
from django.db.models import Count
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.agents.models import Agent
from memoryhub.agents.names import RESERVED_NAMES
from memoryhub.events.models import Event
from memoryhub.locks.models import Lease
from memoryhub.memories.models import Memory, MemoryKind
from memoryhub.sweepers import LAST_SWEEP_KEY
from policies.decide import decide_write, namespace_rule
from policies.selectors import policy_set

WRITE_EVENTS = ("memory.created", "memory.updated", "memory.deleted", "memory.reverted", "context.sent", "task.created")


class Command(BaseCommand):
    help = "Audit shared resources, default deny, lock TTLs, idempotent writes, alerting and the kill switch."

    def handle(self, *args, **options):
        self.failed = 0
        policies = policy_set()
        self.check_default_deny(policies)
        self.check_resources_have_writers(policies)
        self.check_lost_update_risk(policies)
        self.check_semantic_staleness(policies)
        self.check_roles_exist(policies)
        self.check_identities()
        self.check_lock_ttls()
        self.check_idempotent_writes()
        self.check_alerting()
        self.check_kill_switch()
        self.check_production_settings()
        if self.failed:
            self.stdout.write(f"\n{self.failed} check(s) failed")
            raise SystemExit(1)
        self.stdout.write("\nall checks passed")

    def ok(self, name: str, detail: str) -> None:
        self.stdout.write(f"✓ {name}: {detail}")

    def fail(self, name: str, problem: str, fix: str) -> None:
        self.failed += 1
        self.stdout.write(f"✗ {name}: {problem} — fix: {fix}")

    def check_default_deny(self, policies) -> None:
        open_patterns = [r.pattern for r in policies.namespaces if r.pattern == "*" and "*" in r.writers]
        if open_patterns:
            self.fail(
                "default deny",
                "pattern '*' lets every role write every namespace",
                "narrow its writers to [] and grant namespaces explicitly",
            )
        else:
            self.ok("default deny", f"{len(policies.namespaces)} namespace policies; anything unmatched is denied")

    def check_resources_have_writers(self, policies) -> None:
        namespaces = list(Memory.objects.filter(deleted_at=None).values_list("namespace", flat=True).distinct()[:1000])
        probe = Actor(kind="agent", id="coordination-check", role="*none*")
        orphans = [ns for ns in namespaces if decide_write(policies, probe, ns).rule is None]
        unwritable = [
            ns for ns in namespaces if (rule := decide_write(policies, probe, ns).rule) is not None and not rule.writers
        ]
        if orphans:
            self.fail(
                "shared resources mapped to writers",
                f"no policy covers {', '.join(sorted(orphans)[:5])}",
                "add a namespace policy naming the roles that write there (apply_policies)",
            )
        else:
            self.ok(
                "shared resources mapped to writers",
                f"{len(namespaces)} namespaces in use, each covered by a policy"
                + (f" ({len(unwritable)} writable by humans only)" if unwritable else ""),
            )

    def check_lost_update_risk(self, policies) -> None:
        since = timezone.now() - timedelta(days=1)
        risky = []
        rows = (
            Event.objects.filter(type="memory.updated", at__gte=since, actor_kind="agent")
            .values("resource", "namespace")
            .annotate(writers=Count("actor_id", distinct=True))
            .filter(writers__gt=1)
        )
        probe = Actor(kind="agent", id="coordination-check", role="*none*")
        for row in rows[:1000]:
            rule = decide_write(policies, probe, row["namespace"]).rule
            if rule is not None and rule.write_mode == "last_write_wins":
                risky.append(row["resource"])
        if risky:
            self.fail(
                "no lost updates",
                f"several agents overwrote {', '.join(risky[:5])} in a last_write_wins namespace",
                "make the namespace optimistic (If-Match) or locked",
            )
        else:
            self.ok("no lost updates", "memories written by several agents are all version-checked or locked")

    def check_semantic_staleness(self, policies) -> None:
        """Stale semantic memory is worse than none: every namespace of it should say when it goes stale."""
        namespaces = (
            Memory.objects.filter(deleted_at=None, kind=MemoryKind.SEMANTIC)
            .values_list("namespace", flat=True)
            .distinct()[:1000]
        )
        unruled = sorted(
            ns for ns in namespaces if not ((rule := namespace_rule(policies, ns)) and rule.stale_after_seconds)
        )
        if unruled:
            self.fail(
                "semantic memory goes stale",
                f"no stale_after_seconds for the semantic memory of {', '.join(unruled[:5])}"
                + (f" and {len(unruled) - 5} more" if len(unruled) > 5 else ""),
                "set stale_after_seconds on their namespace policies (apply_policies)",
            )
        else:
            self.ok("semantic memory goes stale", "every namespace of semantic memory has stale_after_seconds")

    def check_roles_exist(self, policies) -> None:
        roles = set(Agent.objects.values_list("role", flat=True).distinct())
        named = set()
        for rule in policies.namespaces:
            named |= set(rule.readers) | set(rule.writers)
        for rule in policies.fields:
            named |= set(rule.owners)
        for rule in policies.deference:
            named |= {rule.role, rule.defers_to}
        unknown = sorted(named - roles - {"*", "self"})
        if unknown and roles:
            self.fail(
                "policies name real roles",
                f"no agent has role(s) {', '.join(unknown)}",
                "fix the typo in the policy file, or create the agents",
            )
        else:
            self.ok("policies name real roles", f"{len(roles)} roles in use")

    def check_identities(self) -> None:
        # Agents created before reserved names were refused (see memoryhub.agents.names).
        roles = set(Agent.objects.values_list("role", flat=True).distinct())
        confused = sorted(
            f"{agent.id} ({agent.role})"
            for agent in Agent.objects.all()
            if agent.id in RESERVED_NAMES or agent.role in RESERVED_NAMES or agent.id in roles
        )
        if confused:
            self.fail(
                "identities are distinct",
                f"agent(s) {', '.join(confused[:5])} use a reserved word or a role name as id",
                "suspend them and create agents with other names",
            )
        else:
            self.ok("identities are distinct", "no agent id is a role name or a reserved word")

    def check_lock_ttls(self) -> None:
        now = timezone.now()
        active = Lease.objects.filter(released_at=None, expires_at__gt=now)
        too_long = active.filter(expires_at__gt=now + timedelta(days=1)).count()
        if too_long:
            self.fail(
                "TTL on every lock",
                f"{too_long} leases run for more than a day",
                "use short TTLs with heartbeats (the client's lock() heartbeats for you)",
            )
        else:
            self.ok(
                "TTL on every lock",
                f"{active.count()} active leases, all with a TTL of at most a day; expired leases are free at once",
            )

    def check_idempotent_writes(self) -> None:
        since = timezone.now() - timedelta(days=1)
        writes = Event.objects.filter(type__in=WRITE_EVENTS, actor_kind="agent", at__gte=since)
        total = writes.count()
        bare = writes.filter(idempotency_key="")
        missing = bare.count()
        if missing:
            agents = sorted(set(bare.values_list("actor_id", flat=True)[:200]))
            self.fail(
                "idempotent writes",
                f"{missing} of {total} agent writes in 24 h had no Idempotency-Key ({', '.join(agents[:5])})",
                "send Idempotency-Key on every write (memoryhub.client does)",
            )
        else:
            self.ok("idempotent writes", f"{total} agent writes in 24 h, all with an Idempotency-Key")

    def check_alerting(self) -> None:
        if not settings.REDIS_URL:
            self.ok("alerting", "embedded default: the server runs the sweepers (expiry, lock alerts) itself")
            return
        last = cache.get(LAST_SWEEP_KEY)
        if last is None or timezone.now() - last > timedelta(seconds=3 * settings.MEMORYHUB_SWEEP_INTERVAL + 30):
            self.fail(
                "alerting",
                "no sweep has run recently, so alert.lock_wait and expiries are not recorded",
                "run `celery -A memoryhub worker -B` (worker + beat)",
            )
        else:
            self.ok("alerting", f"last sweep at {last.isoformat()}")

    def check_kill_switch(self) -> None:
        humans = get_user_model().objects.filter(is_staff=True, is_active=True).count()
        if humans:
            self.ok("kill switch", f"{humans} staff user(s) can suspend agents and force-release locks")
        else:
            self.fail("kill switch", "no staff user can suspend an agent", "python manage.py createsuperuser")

    def check_production_settings(self) -> None:
        if not settings.IS_POSTGRES:
            self.ok(
                "production settings",
                "embedded default (SQLite): fine for one machine; set DATABASE_URL for production",
            )
            return
        problems = []
        if settings.DEBUG:
            problems.append("DJANGO_DEBUG is on")
        if settings.SECRET_KEY.startswith("memoryhub-embedded-default"):
            problems.append("DJANGO_SECRET_KEY is the embedded default")
        if not settings.REDIS_URL:
            problems.append("REDIS_URL is unset (several server processes need a shared channel layer)")
        if problems:
            self.fail("production settings", "; ".join(problems), "set the environment variables listed in the README")
        else:
            self.ok("production settings", "PostgreSQL, Redis, DEBUG off, own secret key")
