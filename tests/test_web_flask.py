"""Flask, automatic under AUTOWRAPT_BOOTSTRAP=flask: an unmodified app (tests/apps/flask_app.py)
driven through its test client, everything checked at a real OTLP receiver."""
import pytest

from support.web import assert_no_route, drive

DRIVER = """
    import json
    from flask_app import app
    client = app.test_client()
    requests = [
        ("GET", "/users/7?token=tok-SECRET-1&q=x", {"Authorization": "Bearer sekrit-abcdefgh",
                                                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        ("GET", "/boom", {"Proxy-Authorization": "proxy-SECRET-2"}),
        ("GET", "/missing", {}),
        ("GET", "/server-error", {}),
        ("GET", "/stream", {}),
        ("GET", "/log", {}),
        ("GET", "/slow?s=0.25", {}),
        ("GET", "/health", {}),
        ("POST", "/login", {"X-Api-Key": "key-SECRET-3"}),
        ("GET", "/nowhere", {}),
        ("GET", "/login", {}),
    ]
    for method, path, headers in requests:
        data = {"user_id": "u-42", "password": "pw-SECRET-4", "email": "bob@example.com"} if method == "POST" else None
        response = client.open(path, method=method, headers=headers, data=data)
        print(json.dumps({"path": path, "status": response.status_code,
                          "body": response.get_data(as_text=True),
                          # Allow's order is a set's: each process hashes strings its own way
                          "headers": sorted((k, ", ".join(sorted(v.split(", "))) if k == "Allow"
                                             else v) for k, v in response.headers.items())}))
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, SPYGLASS_SLOW_REQUEST_TIME="0.2", SPYGLASS_IGNORE_PATHS="/health")


def test_request_spans_are_named_by_rule_and_follow_http_conventions(run):
    span = run.span("GET /users/<int:uid>")
    assert span["kind"] == 2
    attrs = span["attrs"]
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/users/<int:uid>"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/users/7"
    assert attrs["url.scheme"] == "http"
    assert attrs["server.address"] == "localhost"
    assert attrs["user_agent.original"].startswith("Werkzeug")
    assert "client.address" not in attrs  # an IP address is PII: send_default_pii is off
    assert span["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert span["parentSpanId"] == "b7ad6b7169203331"
    assert all("/users/7" not in s["name"] for s in run.spans())


def test_an_unhandled_exception_marks_the_span_and_sends_an_error_event(run):
    span = run.span("GET /boom")
    assert span["status"]["code"] == 2
    event, = [e for e in span["events"] if e["name"] == "exception"]
    attributes = {a["key"]: a["value"]["stringValue"] for a in event["attributes"]}
    assert attributes["exception.type"] == "ZeroDivisionError"
    assert "1 / 0" in attributes["exception.stacktrace"]
    error, = [e for e in run.errors() if e["type"] == "ZeroDivisionError"]
    assert error["handled"] is False
    assert error["_record"]["traceId"] == span["traceId"]
    assert error["_attrs"]["http.route"] == "/boom"
    assert error["_attrs"]["spyglass.error.fingerprint"] == error["fingerprint"]
    frame = [f for f in error["frames"] if f["in_app"]][-1]
    assert (frame["module"], frame["function"], frame["context_line"].strip()) == (
        "flask_app", "boom", "return 1 / 0")
    assert len(frame["pre_context"]) == 5 and frame["post_context"]
    assert "vars" not in frame  # report_local_vars is off by default
    assert error["request"]["headers"]["Proxy-Authorization"] == "[Filtered]"


def test_the_app_responses_are_unchanged_by_the_sensor(run):
    plain = drive(DRIVER, bootstrap=None)
    assert plain.outputs == run.outputs
    assert [o["status"] for o in run.outputs] == [200, 500, 404, 503, 200, 200, 200, 200, 500,
                                                  404, 405]


def test_404_is_not_an_error_but_a_5xx_response_is(run):
    assert run.span("GET /missing").get("status", {}).get("code", 0) == 0
    assert run.span("GET /server-error")["status"]["code"] == 2
    assert not [e for e in run.errors() if "404" in e["message"]]


def test_requests_no_rule_matched_are_named_by_their_method_without_a_route(run):
    assert_no_route(run.spans(), "/nowhere", 404)
    assert_no_route(run.spans(), "/login", 405)  # the rule is POST's: it does not match a GET
    assert run.span("GET /missing")["attrs"]["http.route"] == "/missing"  # matched, then 404


def test_slow_requests_are_marked_and_ignored_paths_not_traced(run):
    assert run.span("GET /slow")["attrs"]["spyglass.slow"] is True
    assert "spyglass.slow" not in run.span("GET /users/<int:uid>")["attrs"]
    assert not [s for s in run.spans() if "health" in s["name"] or s["attrs"].get("url.path") == "/health"]


def test_secrets_never_leave_the_process(run):
    text = run.receiver.raw_text()
    for secret in ("tok-SECRET-1", "proxy-SECRET-2", "key-SECRET-3", "pw-SECRET-4",
                   "sekrit-abcdefgh", "bob@example.com"):
        assert secret not in text
    error, = [e for e in run.errors() if e["type"] == "ValueError"]
    assert error["request"]["data"]["password"] == "[Filtered]"
    assert error["request"]["headers"]["X-Api-Key"] == "[Filtered]"
    assert error["user"] == {"id": "u-42"}  # g.user; id only
    assert run.span("POST /login")["attrs"]["enduser.id"] == "u-42"


def test_logs_are_sent_with_trace_context_and_exc_info_is_captured_once(run):
    span = run.span("GET /log")
    warning, = [r for r in run.logs() if r["severityText"] == "WARNING"]
    assert warning["traceId"] == span["traceId"] and warning["spanId"] == span["spanId"]
    assert warning["body"]["stringValue"] == "careful: user [Filtered] did things"
    assert warning["attrs"]["log.logger"] == "flask_app"
    assert not [r for r in run.logs() if r["body"]["stringValue"] == "not sent"]
    key_errors = [e for e in run.errors() if e["type"] == "KeyError"]
    assert len(key_errors) == 1 and key_errors[0]["handled"] is True
    assert key_errors[0]["breadcrumbs"][-1]["message"] == "careful: user [Filtered] did things"
    # Flask logs the /boom exception too: it is reported once, not twice.
    assert len([e for e in run.errors() if e["type"] == "ZeroDivisionError"]) == 1


def test_exported_payloads_follow_the_otlp_schema(run):
    assert run.receiver.schema_errors == []
