"""Resource names: what they look like, which namespace they belong to, which holds cover them."""

from __future__ import annotations

import re
from typing import Any

from memoryhub.errors import Invalid
from memoryhub.memories.content import NAMESPACE_RE

# Letters, digits and `_ . : @ / -`: a namespace, `<namespace>/<key>`, `memory:<namespace>/<key>` or
# any such name. No commas or spaces, so a set of names joined with "," stays unambiguous in events.
RESOURCE_RE = re.compile(r"\A[A-Za-z0-9_.:@/-]{1,600}\Z")  # \Z: `$` lets a final newline through


def check_resource(resource: Any, field_name: str = "resource") -> str:
    if not isinstance(resource, str) or not RESOURCE_RE.match(resource):
        raise Invalid(
            "a resource name is 1-600 letters, digits, '_', '.', ':', '@', '/' or '-'",
            **{field_name: [f"invalid resource name: {resource!r}"[:200]]},
        )
    return resource


def resource_namespace(resource: str) -> str:
    """The namespace a resource name denotes, which decides who sees its locks, holds and their events
    (one rule for every name): `memory:inventory:sku-1/count`, `inventory:sku-1/count` and
    `inventory:sku-1` -> `inventory:sku-1`; a name whose first part is no namespace (too long, or not
    ':'-separated segments) -> "" (none: only humans, and the holder, see what is filed there)."""
    namespace = resource.removeprefix("memory:").split("/", 1)[0]
    return namespace if len(namespace) <= 255 and NAMESPACE_RE.match(namespace) else ""


def aliases(resource: str) -> set[str]:
    """The names one thing goes by: a memory `<namespace>/<key>` and its lock `memory:<namespace>/<key>`."""
    bare = resource.removeprefix("memory:")
    return {resource, bare, f"memory:{bare}"} if "/" in bare else {resource, bare}


def covering_names(resource: str) -> set[str]:
    """The names whose hold covers `resource`: its aliases and its namespace (a hold on
    `customer:acme` covers the memories in it and their locks)."""
    namespace = resource_namespace(resource)
    return aliases(resource) | ({namespace} if namespace else set())
