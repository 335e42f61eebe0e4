"""Ranking on the labelled corpus: exact terms lexically, paraphrases semantically and in hybrid."""

from __future__ import annotations

import pytest

from memoryhub.actors import Actor
from memoryhub.search.selectors import memories_search

from .conftest import PARAPHRASES

HUMAN = Actor(kind="human", id="alice", role="human")


def _top(page, n=3):
    return [(r["namespace"], r["key"]) for r in page.results[:n]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("structlog", ("code:review", "pr-102")),
        ("thumbnails CDN", ("code:review", "pr-103")),
        ("invoices", ("customer:acme", "ticket-9")),
        ("migrations", ("code:docs", "deploy-runbook")),
    ],
)
def test_exact_terms_rank_first_lexically(corpus, q, expected):
    page = memories_search(actor=HUMAN, q=q, mode="lexical")
    assert _top(page, 1) == [expected]
    assert "<mark>" in page.results[0]["snippet"]


@pytest.mark.parametrize(("q", "expected"), PARAPHRASES)
@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_paraphrases_find_their_memory_in_the_top_3(corpus, q, expected, mode):
    page = memories_search(actor=HUMAN, q=q, mode=mode)
    assert expected in _top(page), _top(page, 5)
    assert page.incomplete is False


def test_json_key_names_do_not_match(corpus):
    # "deal_stage" and "notes" are field names in customer profiles, not words of any memory.
    assert memories_search(actor=HUMAN, q="notes", mode="lexical").results == []


def test_words_in_nested_values_count(corpus):
    page = memories_search(actor=HUMAN, q="balancer", mode="lexical")
    assert _top(page, 1) == [("code:docs", "deploy-runbook")]
