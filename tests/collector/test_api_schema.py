"""The API answers as its OpenAPI document says: schemathesis generates requests from it.

Requests are generated from each parameter's schema (positive data: the API must take
them); the answers must be no 5xx, and of a documented status, content type and schema.
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from spyglass.collector.openapi import openapi_document

from . import payloads

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "positive_data_acceptance")
#: Paths whose valid requests OpenAPI cannot describe exactly: /api/profile wants one of
#: trace_id, route or service, and a query's "one of these" has no schema (400 without).
LOOSER = {"/api/profile": {"positive_data_acceptance"}}


@pytest.fixture(scope="module")
def api_schema(collector_on_each_backend):
    collector = collector_on_each_backend
    # Something to find: a trace with a call, an error group, metrics.
    trace_id, spans = payloads.request_trace("schema", "/users/{id}", calls=[("SELECT 1", "sql", 2.0)])
    collector.post_json("traces", payloads.traces("schema", spans))
    collector.post_json("logs", payloads.error_logs("schema", payloads.error_event_body(), trace_id=trace_id))
    collector.post_json("metrics", payloads.runtime_metrics("schema"))
    return schemathesis.openapi.from_url(f"{collector.url}/api/openapi.json")


@pytest.mark.parametrize("path", sorted(openapi_document()["paths"]))
def test_api_answers_as_its_openapi_document_says(api_schema, path):
    operation = api_schema[path]["GET"]
    checks = [getattr(schemathesis.checks, name) for name in CHECKS if name not in LOOSER.get(path, ())]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers(case):
        case.call_and_validate(checks=checks)

    answers()


def test_state_changes_answer_as_the_openapi_document_says(api_schema):
    """POST /api/errors/{group_id}: every body the schema allows is taken (200, or 404 for a
    group that is not there), and the answers are as documented."""
    operation = api_schema["/api/errors/{group_id}"]["POST"]
    checks = [getattr(schemathesis.checks, name) for name in CHECKS if name != "positive_data_acceptance"]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers(case):
        response = case.call_and_validate(checks=checks)
        assert response.status_code in (200, 404), response.text

    answers()
