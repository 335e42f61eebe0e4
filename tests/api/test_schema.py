"""The published schema's own promises, which schemathesis (test_schemathesis.py) takes as given:
the links name operations that exist, and every answer of every operation is documented."""

from __future__ import annotations

import pytest

from memoryhub.api.schema import LINKS


@pytest.fixture
def schema(human):
    response = human.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _operations(schema):
    return {
        operation["operationId"]: operation
        for path in schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_every_link_starts_from_a_documented_answer_and_names_an_operation(schema):
    operations = _operations(schema)
    for (source, status), links in LINKS.items():
        assert "links" in operations[source]["responses"][status], (source, status)
        for link in links.values():
            target = operations[link["operationId"]]
            path_parameters = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert {name for name in link["parameters"] if "." not in name} == path_parameters, link


def test_every_operation_documents_its_errors_in_the_error_shape(schema):
    for operation_id, operation in _operations(schema).items():
        for status in ("400", "401", "403", "429"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorOutput"}, (operation_id, status)


def test_inputs_refuse_unknown_fields_and_outputs_list_their_pages(schema):
    components = schema["components"]["schemas"]
    assert components["MemoryPutInput"]["additionalProperties"] is False
    page = components["MemoryPageOutput"]["properties"]
    assert set(page) == {"results", "limit", "offset", "next"}
