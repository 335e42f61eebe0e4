"""Framework names (any string) as hub names, reversibly.

A hub namespace is `:`-separated segments of `[A-Za-z0-9_.@-]`, a key `[A-Za-z0-9_.:@-]`, each at most
255 characters. A framework label or key may hold anything (`:`, `/`, spaces, accents). Every
character outside `[A-Za-z0-9_@-]` becomes `.XX` per UTF-8 byte (upper-case hex), so `.` only ever
starts an escape, `:` only ever separates segments, and each hub name decodes to exactly one
framework name. The empty key, which the hub's names cannot spell, is `._` (which `encode` never returns)."""

from __future__ import annotations

import re

MAX_NAME = 255
_SAFE = re.compile(r"[A-Za-z0-9_@-]")
_ESCAPES = re.compile(r"(?:\.[0-9A-F]{2})+")
_CANONICAL = re.compile(r"(?:[A-Za-z0-9_@-]|\.[0-9A-F]{2})+")
_EMPTY = "._"  # not "." : a URL path segment "." is removed by every HTTP client


class UnmappableName(ValueError):
    """A name the hub cannot hold (too long once escaped) or a hub name that no framework wrote."""


def encode(name: str) -> str:
    """`name` as a hub segment or key."""
    if name == "":
        return _EMPTY
    out = []
    for char in name:
        if _SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f".{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode(segment: str) -> str:
    """The name `encode` turned into `segment`; UnmappableName for a segment `encode` never returns."""
    if segment == _EMPTY:
        return ""
    if not _CANONICAL.fullmatch(segment):
        raise UnmappableName(f"{segment!r} is not an encoded name")
    try:
        name = _ESCAPES.sub(
            lambda m: bytes.fromhex(m.group().replace(".", "")).decode("utf-8", "surrogatepass"), segment
        )
    except UnicodeDecodeError:
        raise UnmappableName(f"{segment!r} is not an encoded name") from None
    if encode(name) != segment:  # an escaped safe character: not how encode spells it
        raise UnmappableName(f"{segment!r} is not an encoded name")
    return name


def join(prefix: str, labels: tuple[str, ...] | list[str]) -> str:
    """A hub namespace: the store's own prefix (hub segments, may be empty), then each label encoded."""
    parts = ([prefix] if prefix else []) + [encode(label) for label in labels]
    namespace = ":".join(parts)
    if len(namespace) > MAX_NAME:
        raise UnmappableName(
            f"namespace {tuple(labels)!r} is {len(namespace)} characters as a hub name; the hub allows 255"
        )
    return namespace


def split(prefix: str, namespace: str) -> tuple[str, ...] | None:
    """The labels of a hub namespace under `prefix`, or None if it is not one `join` makes."""
    if prefix:
        if not namespace.startswith(prefix + ":"):
            return None
        namespace = namespace[len(prefix) + 1 :]
    try:
        return tuple(decode(segment) for segment in namespace.split(":"))
    except UnmappableName:
        return None


def key(name: str) -> str:
    encoded = encode(name)
    if len(encoded) > MAX_NAME:
        raise UnmappableName(f"key {name[:40]!r}... is {len(encoded)} characters as a hub key; the hub allows 255")
    return encoded


def glob(prefix: str, labels: tuple[str, ...] = ()) -> str:
    """A hub glob covering the namespaces under `labels` (and some others sharing the characters,
    which the caller drops by decoding)."""
    base = join(prefix, labels) if labels else prefix
    return f"{base}*" if base else "*"
