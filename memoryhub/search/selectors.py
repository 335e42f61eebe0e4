"""Search over live memories the caller may read: lexical (the database's full-text engine), semantic
(embeddings) and hybrid (reciprocal rank fusion of the two).

Every candidate list is computed by the database under one condition (readable by the caller, live,
the caller's own filters), so nothing the caller may not read is ranked, counted or limited over.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.core import signing
from django.db import connection, transaction
from django.db.models import F, Func, IntegerField, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from memoryhub import times
from memoryhub.actors import Actor
from memoryhub.errors import Invalid
from memoryhub.memories.content import check_names
from memoryhub.memories.lifecycle import Rules, is_stale, recency_factor, valid_q
from memoryhub.memories.models import Memory, MemoryKind
from memoryhub.memories.selectors import memory_to_dict
from policies.readable import glob_q, readable_q
from policies.selectors import policy_set

from . import schema
from .embedders import Unavailable, current_embedder, values_text
from .models import Embedding, Pending

MODES = ("hybrid", "lexical", "semantic")
HNSW_EF_SEARCH = 200
RRF_K = 60  # reciprocal rank fusion's constant, as in Cormack et al. and Graphiti
MAX_LIMIT = 100
MAX_DEPTH = 1000  # how far a cursor may page into one ranking
# Candidates taken from each list before fusion. 100, not 200: the HNSW scan returns about ef_search
# (200) candidates per pass and a fifth of them may fail the caller's filters, so 200 survivors took a
# second pass (semantic p50 at 100,000 memories: 27 ms for 200, 16 ms for 100, 14 ms for 50).
HYBRID_DEPTH = 100
MAX_Q_CHARS = 1000
MAX_TERMS = 32
MAX_FILTER_FIELDS = 16
FILTER_OPERATORS = {"$eq": "exact", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,99}$")
_WORD_RE = re.compile(r"\w+")
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_CURSOR_SALT = "memoryhub.search.cursor"


class Hit(NamedTuple):
    """A ranked candidate with what the reranking weighs (recency, staleness): read by the ranking
    query itself, so the fused list needs no second read of up to 400 rows (9 ms of a 60 ms hybrid
    search at 100,000 memories, measured)."""

    id: int
    score: float
    namespace: str
    kind: str
    updated_at: datetime
    verified_at: datetime | None
    deleted_at: None = None  # candidates are live (is_stale reads it)


HIT_FIELDS = ("namespace", "kind", "updated_at", "verified_at")


def _hits(scored: list[tuple[int, float]]) -> list[Hit]:
    """Hits for (id, score) pairs from a statement that could not read the fields (SQLite's FTS5
    query, the exact cosine over every candidate), in their order."""
    rows = {
        row[0]: row[1:] for row in Memory.objects.filter(id__in=[i for i, _ in scored]).values_list("id", *HIT_FIELDS)
    }
    return [Hit(memory_id, score, *rows[memory_id]) for memory_id, score in scored if memory_id in rows]


@dataclass
class SearchPage:
    results: list[dict[str, Any]]
    next_cursor: str | None = None
    incomplete: bool = False
    notes: list[str] = field(default_factory=list)
    mode: str = "hybrid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "results": self.results,
            "next_cursor": self.next_cursor,
            "incomplete": self.incomplete,
            "notes": self.notes,
        }


# --- input --------------------------------------------------------------------------------------


def _check_text(value: str, name: str) -> None:
    if "\x00" in value:
        raise Invalid(f"{name} must not contain NUL characters", **{name: ["NUL character"]})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{name} must be valid UTF-8 text", **{name: ["lone surrogate"]})


def _check_query(q: str) -> str:
    if not isinstance(q, str) or not q.strip():
        raise Invalid("q is required", q=["required"])
    _check_text(q, "q")
    if len(q) > MAX_Q_CHARS:
        raise Invalid(f"q is longer than {MAX_Q_CHARS} characters", q=[f"at most {MAX_Q_CHARS} characters"])
    return q.strip()


class JsonType(Func):
    """The JSON type of a top-level content field, in one vocabulary on both databases."""

    output_field = TextField()

    def __init__(self, name: str, column: str) -> None:
        self.name = name
        super().__init__(F(column))

    def as_postgresql(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({sql} -> %s)", [*params, self.name]

    def as_sqlite(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"CASE json_type({sql}, %s) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' ELSE json_type({sql}, %s) END",
            [*params, f'$."{self.name}"', *params, f'$."{self.name}"'],
        )


def _filter_conditions(spec: Any, prefix: str) -> tuple[dict[str, Any], Q]:
    """`{"status": "open", "n": {"$gt": 3}}` as aliases and a condition on top-level content fields.
    Comparisons hold only between values of the same JSON type (a number is never "greater" than a
    string), the same on both databases."""
    if spec is None:
        return {}, Q()
    if not isinstance(spec, dict):
        raise Invalid(
            "filter must be a JSON object of field: value or field: {operator: value}", filter=["not an object"]
        )
    if len(spec) > MAX_FILTER_FIELDS:
        raise Invalid(f"filter has more than {MAX_FILTER_FIELDS} fields", filter=["too many fields"])
    aliases: dict[str, Any] = {}
    condition = Q()
    for index, (name, raw) in enumerate(spec.items()):
        if not isinstance(name, str) or not _FIELD_RE.match(name) or "__" in name:
            raise Invalid(f"filter field {name!r} is not a top-level field name", filter=[f"bad field {name!r}"])
        operations = raw if isinstance(raw, dict) else {"$eq": raw}
        if not operations:
            raise Invalid(f"filter on {name!r} has no operator", filter=[f"empty operators for {name!r}"])
        value_alias, type_alias = f"_f{index}", f"_t{index}"
        aliases[value_alias] = KeyTransform(name, f"{prefix}content")
        for operator, value in operations.items():
            if operator not in FILTER_OPERATORS:
                raise Invalid(
                    f"unknown filter operator {operator!r}", filter=[f"operators: {', '.join(FILTER_OPERATORS)}"]
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise Invalid("filter values must be finite numbers", filter=["NaN or Infinity"])
            if isinstance(value, str):
                _check_text(value, "filter")
                json_type = "string"
            elif isinstance(value, bool):
                json_type = "boolean"
            elif isinstance(value, int | float):
                json_type = "number"
            elif value is None and operator in ("$eq", "$ne"):
                json_type = "null"
            else:
                raise Invalid(
                    f"filter value for {name!r} must be a string, number, boolean (or null for $eq/$ne)",
                    filter=[f"bad value for {name!r}"],
                )
            if json_type == "boolean" and operator not in ("$eq", "$ne"):
                raise Invalid("booleans compare with $eq and $ne only", filter=[f"bad operator for {name!r}"])
            aliases[type_alias] = JsonType(name, f"{prefix}content")
            same = Q(**{type_alias: json_type})
            if json_type == "null":
                matched = same
            else:
                lookup = "exact" if operator in ("$eq", "$ne") else FILTER_OPERATORS[operator]
                matched = same & Q(**{f"{value_alias}__{lookup}": value})
            # $ne also holds where the field is absent or of another type, as in LangGraph's store.
            condition &= ~matched if operator == "$ne" else matched
    return aliases, condition


def _namespace_condition(namespaces: list[str] | None, field: str) -> Q:
    if not namespaces:
        return Q()
    condition = Q(pk__in=[])
    for pattern in namespaces:
        _check_text(pattern, "namespace")
        check_names(pattern.replace("*", "x"))
        condition |= glob_q(pattern, field=field, vendor=connection.vendor)
    return condition


@dataclass
class _Scope:
    """Everything that decides which memories are candidates, as a condition usable from Memory
    (prefix "") and from Embedding/Pending (prefix "memory__")."""

    actor: Actor
    namespaces: list[str] | None
    kind: str | None
    updated_by: str | None
    filter: Any

    def apply(self, queryset: QuerySet, prefix: str = "") -> QuerySet:
        now = timezone.now()
        aliases, content = _filter_conditions(self.filter, prefix)
        condition = (
            Q(**{f"{prefix}deleted_at": None})
            & (Q(**{f"{prefix}expires_at": None}) | Q(**{f"{prefix}expires_at__gt": now}))
            & valid_q(times.now(), prefix)
            & readable_q(policy_set(), self.actor, field=f"{prefix}namespace", vendor=connection.vendor)
            & _namespace_condition(self.namespaces, f"{prefix}namespace")
            & content
        )
        if self.kind:
            condition &= Q(**{f"{prefix}kind": self.kind})
        if self.updated_by:
            condition &= Q(**{f"{prefix}updated_by": self.updated_by})
        return queryset.alias(**aliases).filter(condition) if aliases else queryset.filter(condition)


# --- cursor ---------------------------------------------------------------------------------------


def _fingerprint(**params: Any) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cursor_offset(cursor: str | None, fingerprint: str) -> int:
    if not cursor:
        return 0
    try:
        data = signing.loads(cursor, salt=_CURSOR_SALT)
        offset, bound_to = int(data["o"]), data["f"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise Invalid("cursor is not one this server issued", cursor=["invalid or tampered cursor"])
    if bound_to != fingerprint:
        raise Invalid("cursor belongs to another search", cursor=["the query or filters changed"])
    if not 0 < offset <= MAX_DEPTH:
        raise Invalid("cursor is out of range", cursor=["out of range"])
    return offset


def _next_cursor(offset: int, fingerprint: str) -> str:
    return signing.dumps({"o": offset, "f": fingerprint}, salt=_CURSOR_SALT)


# --- lexical --------------------------------------------------------------------------------------


# Words too common to say what a memory is about (both engines get the same terms: PostgreSQL's
# english configuration drops these itself, SQLite's porter tokenizer keeps every word).
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "again",
        "all",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "here",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "not",
        "of",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


def query_terms(q: str) -> list[str]:
    words: list[str] = []
    for word in _WORD_RE.findall(q.lower()):
        if word not in words:
            words.append(word)
    return ([w for w in words if w not in STOPWORDS] or words)[:MAX_TERMS]


def required_matches(terms: list[str]) -> int:
    """How many of the query's terms a memory must contain to be a lexical hit: any one of one or
    two, at least half of three or more (Elasticsearch's minimum_should_match): a long question
    should not match every memory that shares one common word with it."""
    return 1 if len(terms) <= 2 else math.ceil(len(terms) / 2)


def _lexical_postgresql(candidates: QuerySet, terms: list[str], depth: int) -> list[Hit]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVectorField

    # Any term may match (ranked by how many and how close: ts_rank_cd's cover density), as BM25
    # engines do; plainto_tsquery per term stems it.
    query = SearchQuery(terms[0], config=schema.TS_CONFIG)
    for term in terms[1:]:
        query |= SearchQuery(term, config=schema.TS_CONFIG)
    tsv = RawSQL('"memories_memory"."search_tsv"', [], output_field=SearchVectorField())
    queryset = candidates.alias(tsv=tsv).filter(tsv=query)
    needed = required_matches(terms)
    if needed > 1:
        matched = " + ".join(
            ['("memories_memory"."search_tsv" @@ plainto_tsquery(%s::regconfig, %s))::int'] * len(terms)
        )
        params = [v for term in terms for v in (schema.TS_CONFIG, term)]
        queryset = queryset.alias(matched=RawSQL(f"({matched})", params, output_field=IntegerField())).filter(
            matched__gte=needed
        )
    rows = (
        queryset.annotate(score=SearchRank(F("tsv"), query, cover_density=True))
        .order_by("-score", "id")
        .values_list("id", "score", *HIT_FIELDS)[:depth]
    )
    return [Hit(memory_id, float(score), *fields) for memory_id, score, *fields in rows]


def _fts5_phrase(term: str) -> str:
    # An FTS5 string: no operator or column syntax from the caller.
    return '"' + term.replace('"', '""') + '"'


def _fts5_query(terms: list[str]) -> str:
    return " OR ".join(_fts5_phrase(term) for term in terms)


# SQLite's score: FTS5's bm25() weighs terms by their frequency in the whole table, memories the
# caller may not read included, so a caller's scores (and order) would move when an unreadable
# memory is written. This one uses the matched memory alone: how many query terms it holds, plus
# BM25's saturating term frequency (k1 = 1.2, b = 0.75) against a fixed 64-word reference length
# instead of the corpus average (the key's matches count twice). PostgreSQL's ts_rank_cd is likewise
# per document.
# (A column with no words is NULL, and so is its highlight: coalesced, or the score would be NULL.)
_SQLITE_HITS = "(length(coalesce(highlight(search_fts, {column}, '\ue000', ''), '')) - length(coalesce(f.{name}, '')))"
_SQLITE_WORDS = "(length(coalesce(f.body, '')) - length(replace(coalesce(f.body, ''), ' ', '')) + 1)"
_SQLITE_SCORE = f"(2 * {_SQLITE_HITS.format(column=0, name='key')} + {_SQLITE_HITS.format(column=1, name='body')})"


def _lexical_sqlite(candidates: QuerySet, terms: list[str], depth: int) -> list[Hit]:
    ids_sql, ids_params = candidates.values("id").query.sql_with_params()
    per_term = "(f.rowid IN (SELECT rowid FROM search_fts WHERE search_fts MATCH %s))"
    matched = " + ".join([per_term] * len(terms))
    hits = _SQLITE_SCORE
    score = f"(({matched}) + 1.0 * {hits} / ({hits} + 1.2 * (0.25 + 0.75 * {_SQLITE_WORDS} / 64.0)))"
    phrases = [_fts5_phrase(term) for term in terms]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT rowid, score FROM (SELECT f.rowid AS rowid, ({matched}) AS matched, {score} AS score "
            f"FROM search_fts f WHERE search_fts MATCH %s AND f.rowid IN ({ids_sql})) "
            "WHERE matched >= %s ORDER BY score DESC, rowid LIMIT %s",
            [*phrases, *phrases, _fts5_query(terms), *ids_params, required_matches(terms), depth],
        )
        return _hits([(memory_id, float(value)) for memory_id, value in cursor.fetchall()])


def _lexical(candidates: QuerySet, q: str, depth: int) -> list[Hit]:
    terms = query_terms(q)
    if not terms:
        return []
    if connection.vendor == "postgresql":
        return _lexical_postgresql(candidates, terms, depth)
    return _lexical_sqlite(candidates, terms, depth)


def _marked(text: str) -> str:
    """Engine output with private-use markers -> HTML-escaped text with <mark> around the matches."""
    return html.escape(text).replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>")


def _snippets(memories: dict[int, Memory], ids: list[int], q: str) -> dict[int, str]:
    terms = query_terms(q)
    if not ids or not terms:
        return {}
    if connection.vendor == "postgresql":
        texts = [values_text(memories[i].content).replace(_MARK_OPEN, "").replace(_MARK_CLOSE, "") for i in ids]
        options = f'StartSel={_MARK_OPEN}, StopSel={_MARK_CLOSE}, MaxWords=24, MinWords=8, MaxFragments=2, FragmentDelimiter=" … "'
        tsquery = " || ".join(["plainto_tsquery(%s::regconfig, %s)"] * len(terms))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.n, ts_headline(%s::regconfig, t.body, {tsquery}, %s) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(body, n)",
                [schema.TS_CONFIG, *[v for term in terms for v in (schema.TS_CONFIG, term)], options, texts],
            )
            return {ids[n - 1]: _marked(text) for n, text in cursor.fetchall()}
    placeholders = ",".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT rowid, snippet(search_fts, 1, %s, %s, ' … ', 16) FROM search_fts "
            f"WHERE search_fts MATCH %s AND rowid IN ({placeholders})",
            [_MARK_OPEN, _MARK_CLOSE, _fts5_query(terms), *ids],
        )
        return {memory_id: _marked(text) for memory_id, text in cursor.fetchall() if text}


# --- semantic -------------------------------------------------------------------------------------


def _semantic(scope: _Scope, q: str, depth: int, *, exact: bool = False) -> list[Hit]:
    """Nearest live readable memories by cosine similarity of current-version embeddings: through
    the HNSW index where pgvector is on (approximate), else (or with `exact`) every candidate."""
    import numpy as np

    embedder = current_embedder()
    vector = np.asarray(embedder.embed([q])[0], dtype=np.float32)
    embedded = scope.apply(Embedding.objects.filter(embedder=embedder.name, version=F("memory__version")), "memory__")
    if schema.has_vector_column(connection) and not exact:
        return _semantic_pgvector(embedded, embedder.name, vector, depth)
    # Exact cosine over the filtered candidates (rows are unit vectors: cosine = dot product).
    best: list[tuple[int, float]] = []
    ids: list[int] = []
    chunks: list[Any] = []

    def flush() -> None:
        nonlocal best, ids, chunks
        if not ids:
            return
        scores = np.vstack(chunks) @ vector
        merged = best + list(zip(ids, scores.tolist(), strict=True))
        merged.sort(key=lambda item: (-item[1], item[0]))
        best, ids, chunks = merged[:depth], [], []

    for memory_id, data in embedded.values_list("memory_id", "data").iterator(chunk_size=2000):
        ids.append(memory_id)
        chunks.append(np.frombuffer(bytes(data), dtype="<f4"))
        if len(ids) >= 5000:
            flush()
    flush()
    return _hits(best)


def _semantic_pgvector(embedded: QuerySet, name: str, vector, depth: int) -> list[Hit]:
    # The HNSW index is made by the worker when it stores an embedder's first vectors, never here:
    # building one inside a search request would stall it for minutes on a large table.
    dimensions = len(vector)
    literal = "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"
    # The same expression as the partial HNSW index (vec::vector(N), embedder = '<name>' inline), so
    # the planner can use it; iterative scan keeps walking the graph until `depth` rows pass the filters.
    distance = RawSQL(
        f'("search_embedding"."vec"::vector({int(dimensions)})) <=> %s::vector({int(dimensions)})', [literal]
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # For this transaction, in one round trip: the iterative scan; the candidate list (recall@10
            # against exact cosine on the bench's 100,000 memories, make bench search, 30 queries: 0.80
            # with pgvector's default 40, 0.90 with 100, 0.97 with 200); and a plan made for this
            # query's values. The statement is prepared (settings: prepare_threshold), and at 10,000
            # memories PostgreSQL switched it to a generic plan that took 17 ms against 7 ms.
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('hnsw.ef_search', %s, true), set_config('plan_cache_mode', 'force_custom_plan', true)",
                [str(max(HNSW_EF_SEARCH, min(depth, 1000)))],
            )
        rows = list(
            embedded.extra(where=[f"search_embedding.embedder = '{name}'"])
            .annotate(distance=distance)
            .order_by("distance")
            .values_list("memory_id", "distance", *(f"memory__{column}" for column in HIT_FIELDS))[:depth]
        )
    # relaxed_order may return rows slightly out of order: sort them.
    hits = [Hit(memory_id, 1.0 - float(distance), *fields) for memory_id, distance, *fields in rows]
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


_reconciled: set[tuple[str, str]] = set()


def _backlog_among(scope: _Scope) -> bool:
    """May a memory this search could return lack its vector? (Its version is pending, or the
    embedder is new and the worker has not noted its backlog yet: then wake the worker.)"""
    from .services import embedder_reconciled
    from .tasks import embeddings_wanted

    name = current_embedder().name
    marker = (str(connection.settings_dict.get("NAME")), name)
    if marker not in _reconciled:
        if not embedder_reconciled(name):
            transaction.on_commit(embeddings_wanted)
            return True
        _reconciled.add(marker)
    return scope.apply(Pending.objects.all(), "memory__").exists()


# --- the search -----------------------------------------------------------------------------------


def _fuse(lists: list[list[Hit]]) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    hits: dict[int, Hit] = {}
    for ranked in lists:
        for rank, hit in enumerate(ranked, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            hits[hit.id] = hit
    return [
        hits[memory_id]._replace(score=score)
        for memory_id, score in sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    ]


def _rerank(ranked: list[Hit], *, fresh: bool) -> tuple[list[tuple[int, float]], set[int]]:
    """Relevance weighed by recency (memoryhub.memories.lifecycle: a half-life per kind, or the
    namespace's recency_half_life_seconds), stale memories after every fresh one (or, with `fresh`,
    left out). Returns the new ranking and the stale ids in it."""
    if not ranked:
        return [], set()
    rules, now = Rules(policy_set()), times.now()
    stale: set[int] = set()
    weighed: list[tuple[bool, int, float]] = []
    for hit in ranked:
        rule = rules(hit.namespace)
        if is_stale(hit, rule, now):  # type: ignore[arg-type]  # a Hit has the fields it reads
            if fresh:
                continue
            stale.add(hit.id)
        # Rounded so that memories written moments apart keep the order relevance gave them.
        weighed.append((hit.id in stale, hit.id, hit.score * round(recency_factor(hit, rule, now), 3)))  # type: ignore[arg-type]
    weighed.sort(key=lambda item: (item[0], -item[2], item[1]))
    return [(memory_id, score) for _, memory_id, score in weighed], stale


def memories_search(
    *,
    actor: Actor,
    q: str,
    mode: str = "hybrid",
    namespaces: list[str] | None = None,
    kind: str | None = None,
    updated_by: str | None = None,
    filter: Any = None,
    limit: int = 10,
    cursor: str | None = None,
    fresh: bool = False,
) -> SearchPage:
    """Live, valid memories `actor` may read that match `q`, best first (relevance weighed by
    recency, stale ones last or, with `fresh`, left out), `limit` at a time."""
    q = _check_query(q)
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}", mode=[f"unknown mode {mode!r}"])
    if kind and kind not in MemoryKind.values:
        raise Invalid(f"kind must be one of {', '.join(MemoryKind.values)}", kind=[f"unknown kind {kind!r}"])
    if updated_by:
        _check_text(updated_by, "updated_by")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", limit=[f"1..{MAX_LIMIT}"])
    fingerprint = _fingerprint(
        q=q,
        mode=mode,
        namespaces=namespaces,
        kind=kind,
        updated_by=updated_by,
        filter=filter,
        actor=actor.label,
        fresh=fresh,
    )
    offset = _cursor_offset(cursor, fingerprint)
    scope = _Scope(actor=actor, namespaces=namespaces, kind=kind, updated_by=updated_by, filter=filter)
    candidates = scope.apply(Memory.objects.all())
    # Hybrid fuses two lists of a fixed depth, so that every page is cut from the same fused ranking.
    depth = HYBRID_DEPTH if mode == "hybrid" else min(offset + limit + 1, MAX_DEPTH + 1)
    page = SearchPage(results=[], mode=mode)

    lexical: list[Hit] = []
    semantic: list[Hit] = []
    if mode in ("lexical", "hybrid"):
        lexical = _lexical(candidates, q, depth)
    if mode in ("semantic", "hybrid"):
        try:
            semantic = _semantic(scope, q, depth)
            if _backlog_among(scope):
                page.incomplete = True
                page.notes.append("some memories you may read are not embedded yet: semantic results may be incomplete")
        except (Unavailable, ImportError) as exc:
            page.incomplete = True
            page.notes.append(f"semantic search unavailable: {exc}")
    ranked, stale = _rerank(
        lexical if mode == "lexical" else semantic if mode == "semantic" else _fuse([lexical, semantic]), fresh=fresh
    )

    window = ranked[offset : offset + limit]
    if len(ranked) > offset + limit and offset + limit < MAX_DEPTH:
        page.next_cursor = _next_cursor(offset + limit, fingerprint)
    ids = [memory_id for memory_id, _ in window]
    memories = {memory.id: memory for memory in Memory.objects.filter(id__in=ids)}
    lexical_ids = {hit.id for hit in lexical}
    snippets = _snippets(memories, [i for i in ids if i in lexical_ids and i in memories], q)
    for memory_id, score in window:
        memory = memories.get(memory_id)
        if memory is None:  # deleted between the ranking and this read
            continue
        result = memory_to_dict(memory)
        result["stale"] = memory_id in stale
        result["score"] = round(score, 6)
        result["snippet"] = snippets.get(memory_id) or html.escape(values_text(memory.content)[:160])
        page.results.append(result)
    return page
