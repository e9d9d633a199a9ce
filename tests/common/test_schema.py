"""The OpenAPI schema is generated without warnings and every operation but login needs credentials."""
import pytest
import yaml
from django.core.management import call_command

#: Operations that may be called without credentials: exchanging a password for a token.
ANONYMOUS_ALLOWED = {("/api/v1/auth/token/", "post")}


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_schema_generates_without_warnings(schema):
    assert schema["openapi"].startswith("3.")
    assert len(schema["paths"]) > 30


def test_every_operation_requires_authentication(schema):
    open_operations = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            security = operation.get("security", schema.get("security", []))
            if not security or {} in security:
                open_operations.add((path, method))
    assert open_operations == ANONYMOUS_ALLOWED


def test_operation_ids_are_unique(schema):
    ids = [op["operationId"] for ops in schema["paths"].values() for m, op in ops.items() if "operationId" in op]
    assert len(ids) == len(set(ids))


def test_the_served_schema_is_generated_once_and_matches_the_command(schema, api_client_for, monkeypatch):
    """``/api/schema/`` keeps the document it generated: a second request, by another role, generates nothing."""
    from drf_spectacular.generators import SchemaGenerator

    from apps.common.schema_view import CachedSchemaView

    monkeypatch.setattr(CachedSchemaView, "generated", {})
    calls = []
    original = SchemaGenerator.get_schema
    monkeypatch.setattr(SchemaGenerator, "get_schema", lambda self, **kw: calls.append(1) or original(self, **kw))
    first = api_client_for("operator").get("/api/schema/", HTTP_ACCEPT="application/json")
    second = api_client_for("admin").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert first.status_code == second.status_code == 200
    assert len(calls) == 1
    assert first.json() == second.json()
    assert set(first.json()["paths"]) == set(schema["paths"])
    assert api_client_for("anonymous").get("/api/schema/").status_code == 401
