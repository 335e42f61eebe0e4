import json

import pytest


@pytest.fixture
def sales(policies, make_agent):
    return make_agent("sales-1", "sales")


@pytest.fixture
def support(policies, make_agent):
    return make_agent("support-1", "support")


@pytest.fixture
def product(policies, make_agent):
    return make_agent("product-1", "product")


@pytest.fixture
def docs(policies, make_agent):
    return make_agent("docs-1", "docs")


def url(namespace: str, key: str, suffix: str = "") -> str:
    return f"/api/v1/memories/{namespace}/{key}/{suffix}"


def put(persona_or_client, namespace, key, content, *, version=None, **body):
    client = getattr(persona_or_client, "client", persona_or_client)
    headers = {}
    if version is not None:
        headers["HTTP_IF_MATCH"] = f'"{version}"'
    return client.put(
        url(namespace, key), json.dumps({"content": content, **body}), content_type="application/json", **headers
    )


def patch(persona_or_client, namespace, key, content, *, version=None, **body):
    client = getattr(persona_or_client, "client", persona_or_client)
    headers = {"HTTP_IF_MATCH": f'"{version}"'} if version is not None else {}
    return client.patch(
        url(namespace, key), json.dumps({"content": content, **body}), content_type="application/json", **headers
    )
