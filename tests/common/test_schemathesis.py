"""The whole OpenAPI schema, exercised by schemathesis as an administrator and as an operator.

For every operation, hypothesis draws ``EXAMPLES`` requests from the schema (data that fits it), each sent
once per identity, and ``EXAMPLES`` from its negation (data that must be refused) as the administrator (the one
who gets past the permission checks to the validation; an operator's negative requests end in the same
403 as its positive ones). Each is sent in process through the WSGI application to a test database
seeded with a registered model and a deployment. Two checks hold
for every response: no status ≥ 500 (except the health endpoint's 503, which is its job) and a body that
matches the schema of its status code. Failures are collected, not shrunk, and listed together.

The run is bounded: a fixed number of examples, derandomized, no example database, one test database for
all of it (about 23 s on the 2-core machine; most of it is hypothesis generating the requests), so CI
runs it on every submission. Operations with nothing a request could break (see ``_negatable``) get no
negative requests: hypothesis would only spend a second of CPU on each to find that out.
"""

from __future__ import annotations

import json
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import issue_token

#: Requests drawn per operation, identity and mode (positive, negative).
EXAMPLES = 3
#: Operations whose documented failure status is 503 (a dependency down is what they report).
MAY_ANSWER_503 = {("GET", "/api/v1/health/")}


def _schema() -> schemathesis.BaseSchema:
    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded


#: Schemas every value of a path segment, a header or a cookie satisfies: a string, or one without "/".
ALWAYS_SATISFIED = ({"type": "string"}, {"type": "string", "pattern": "^[^/]+$"})


def _negatable(operation: Any) -> bool:
    """Whether the operation has anything a request can break: a body, a query parameter, or a path,
    header or cookie parameter whose schema some value sent there can violate. Hypothesis needs about a
    second of CPU per operation to give up on one that has none (it raises Unsatisfiable), half of this
    test's time; those operations are answered with their positive requests only."""
    if list(operation.body):
        return True
    for parameter in operation.iter_parameters():
        if getattr(parameter.location, "value", parameter.location) == "query":
            return True
        if parameter.definition.get("schema") not in ALWAYS_SATISFIED:
            return True
    return False


def _problems(case: Any, response: Any) -> str | None:
    """What is wrong with one response, or None."""
    status = response.status_code
    if status >= 500 and not (status == 503 and (case.method.upper(), case.operation.path) in MAY_ANSWER_503):
        return f"status {status}"
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except AssertionError as exc:  # schemathesis' failure group (an AssertionError) names the mismatch
        return f"status {status} does not match its schema: {str(exc)[:600]}"
    return None


@pytest.fixture
def seeded(db, role_users) -> dict[str, dict[str, str]]:
    """A registered model with its production alias and a deployment; the identities' token headers."""
    from apps.orchestrator.services import deployment_create
    from tests.orchestrator.helpers import register_rf

    version, _ = register_rf(user=role_users["modeler"], n_estimators=2)
    deployment_create(user=role_users["admin"], name="schema-run", soft_sensor=version.soft_sensor, alias="production")
    return {who: {"Authorization": f"Token {issue_token(role_users[who])}"} for who in ("admin", "operator")}


@pytest.fixture
def connections_kept():
    """Keep the test's database connection across requests, as Django's test client does: the WSGI
    handler closes connections at the end of each request, which would end the test's transaction."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.slow
def test_every_operation_answers_within_its_schema_and_never_500(seeded, connections_kept):
    schema = _schema()
    failures: list[str] = []
    calls = 0
    settings = hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )

    def exercise_as(identities: tuple[str, ...], mode: GenerationMode) -> Any:
        def exercise(case: Any) -> None:
            nonlocal calls
            for who in identities:
                calls += 1
                response = case.call(headers=seeded[who])
                problem = _problems(case, response)
                if problem:
                    query = f"?{case.query}" if case.query else ""
                    failures.append(f"{who} {case.method} {case.formatted_path}{query} ({mode.value}): {problem}")

        return exercise

    for result in schema.get_all_operations():
        operation = result.ok()
        if os.environ.get("STAMM_SCHEMATHESIS_ONLY", "") not in operation.path:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not _negatable(operation):
                continue
            # Each positive request is sent once per identity (drawn once: the draws would be the same anyway,
            # hypothesis being derandomized); negative requests as the administrator only.
            identities = tuple(seeded) if mode is GenerationMode.POSITIVE else ("admin",)
            strategy = operation.as_strategy(generation_mode=mode)
            try:
                settings(hypothesis.given(case=strategy)(exercise_as(identities, mode)))()
            except hypothesis.errors.Unsatisfiable:  # no way to break an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls > 300, f"only {calls} requests were made"
    assert not failures, f"{len(failures)} of {calls} responses failed:\n" + "\n".join(failures[:40])
