"""schemathesis hooks for tests/api/test_schemathesis.py (SCHEMATHESIS_HOOKS): what a schema cannot
say about a valid request, applied to the requests schemathesis means to be valid (positive ones)."""

from __future__ import annotations

import uuid

import schemathesis
from schemathesis.generation.modes import GenerationMode

# A memory's valid_until must be in the future and what it supersedes live memories, a context
# entry's to_agent an agent that exists, its to_role a role some agent has and its reply_to an entry
# the sender may see (a 400 naming the field otherwise): what no format or pattern can tell apart.
# The test made the agent peer-1 (role peer).
VALID = {
    "valid_until": "2100-01-01T00:00:00Z",
    "supersedes": [],
    "to_agent": "peer-1",
    "to_role": "peer",
    "reply_to": None,
}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    # Generated keys come from a small space ("0", "00", ...): most keyed writes would be repeats of
    # another request (422, as documented) and never reach the write. A fresh key per valid request.
    if case.headers and case.headers.get("Idempotency-Key"):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if not isinstance(case.body, dict):
        return
    for name, value in VALID.items():
        if case.body.get(name) is not None:
            case.body[name] = value
