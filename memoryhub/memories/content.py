"""Pure helpers on memory content: names, size, JSON merge patch (RFC 7396), diffs."""

from __future__ import annotations

import json
import re
from typing import Any

from memoryhub.errors import Invalid

# \Z, not $: `$` also matches before a final newline, which would let "ns:a\n" twin "ns:a".
NAMESPACE_RE = re.compile(r"\A[A-Za-z0-9_.@-]+(:[A-Za-z0-9_.@-]+)*\Z")
KEY_RE = re.compile(r"\A[A-Za-z0-9_.:@-]+\Z")
_MISSING = object()


def check_names(namespace: str, key: str | None = None) -> None:
    if len(namespace) > 255 or not NAMESPACE_RE.match(namespace):
        raise Invalid(
            "namespace must be ':'-separated segments of letters, digits, '_', '.', '@' or '-'",
            namespace=["invalid namespace"],
        )
    if key is not None and (len(key) > 255 or not KEY_RE.match(key)):
        raise Invalid("key must be letters, digits, '_', '.', ':', '@' or '-'", key=["invalid key"])


def check_glob(pattern: str) -> None:
    """A namespace glob: a namespace whose segments may hold `*`."""
    check_names(pattern.replace("*", "x"))


def content_size(content: Any) -> int:
    return len(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def diff(before: Any, after: Any) -> dict[str, Any]:
    """Top-level diff of two contents: added, removed and changed keys (a non-object is one value)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        if before == after:
            return {"added": {}, "removed": {}, "changed": {}}
        return {"added": {}, "removed": {}, "changed": {"": {"from": before, "to": after}}}
    return {
        "added": {k: after[k] for k in after.keys() - before.keys()},
        "removed": {k: before[k] for k in before.keys() - after.keys()},
        "changed": {
            k: {"from": before[k], "to": after[k]}
            for k in before.keys() & after.keys()
            if before.get(k, _MISSING) != after.get(k, _MISSING)
        },
    }
