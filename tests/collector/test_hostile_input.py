"""No input breaks the collector: whatever OTLP is sent, every page and API route that shows it answers.

A property-based test draws export requests full of hostile but valid values (NaN,
infinities, arrays and kvlists where strings go, uint64 times past 2^63, error events of the
wrong shape, lone surrogates), sends them in JSON or protobuf to a real ``spyglass serve``,
then loads every page and API route that shows them: each request is taken (200, perhaps
with a partial success), no page or route answers a 5xx, and the API's JSON is standard JSON.
"""
import json
import time
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import hostile, payloads

WINDOW = {"since": "30000d"}  # everything since 1970 (times to 2262 included: no end)


@pytest.fixture(scope="module")
def collector(collector_on_each_backend):
    """Every test here runs on SQLite and on PostgreSQL."""
    return collector_on_each_backend
CONTENT_TYPES = {"json": "application/json", "protobuf": "application/x-protobuf"}


def _strict_json(body):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _get(collector, path, **params):
    """GET ``path``: never a 5xx; an API answer is standard JSON. Its status and body."""
    query = urlencode({**WINDOW, **params})
    status, headers, body = collector.request("GET", f"{quote(path, errors='replace')}?{query}")
    assert status < 500, (path, params, status, body[:500])
    if path.startswith("/api"):
        assert headers["Content-Type"] == "application/json"
        return status, _strict_json(body)
    return status, body


def _pages_showing(collector, service, signal, request):
    """Load every page and API route that shows what ``request`` sent."""
    for path in ("/", "/traces", "/slow-calls", "/errors", "/metrics"):
        _get(collector, path)
        _get(collector, path, service=service)
    for path in ("/api/services", "/api/routes", "/api/traces", "/api/errors", "/api/metrics", "/api/profile",
                 "/profile"):
        _get(collector, path, service=service)
    for sort in ("total", "count", "p95"):
        _get(collector, "/api/slow-calls", service=service, sort=sort)
        _get(collector, "/api/slow-calls", service=service, sort=sort, all="1")
    _get(collector, "/api/errors", service=service, state="all")
    _, traces = _get(collector, "/api/traces", service=service, limit=1000)
    trace_ids = {t["trace_id"] for t in traces["traces"]}
    if signal == "traces":
        trace_ids.add(request["items"][0]["trace_id"].hex())
    for trace_id in trace_ids:
        _get(collector, f"/api/traces/{trace_id}")
        _get(collector, f"/traces/{trace_id}")
    _, groups = _get(collector, "/api/errors", service=service, limit=1000)
    for group in groups["groups"]:
        _get(collector, f"/api/errors/{group['id']}")
        _get(collector, f"/errors/{group['id']}")
    if signal == "metrics":
        for name in {metric["name"] for metric in request["items"]}:
            if name and "/" not in name:
                _get(collector, f"/api/metrics/{name}", service=service)
                _get(collector, f"/api/services/{service}/metrics/{name}")
    _pages_of_the_service(collector, service)
    _searches_showing(collector, service, signal, request)


def _pages_of_the_service(collector, service):
    """The service page and its API routes (collector/series.py), on a short and a long window."""
    for window in ({}, {"since": "15m", "step": "1"}):
        _get(collector, f"/services/{service}", **window)
        _get(collector, f"/api/services/{service}", **window)
        _get(collector, f"/api/services/{service}/series", **window)
    _, metrics = _get(collector, "/api/metric-names", service=service)
    for metric in metrics["metrics"]:
        if "/" not in metric["name"]:
            _get(collector, f"/api/services/{service}/metrics/{metric['name']}")


def _searches_showing(collector, service, signal, request):
    """Trace search and log search for what ``request`` sent: by its attributes, its
    loggers, its trace ids; the logs page; the trace-id box."""
    for path in ("/logs", "/api/logs"):
        _get(collector, path, service=service)
        _get(collector, path, service=service, q="a", level="warn", logger="app")
    for item in request["items"]:
        for key, (_, value) in item.get("attributes", [])[:2]:
            attribute = f"{key}={value}".encode("utf-8", "surrogatepass")  # lone surrogates as sent
            _get(collector, "/api/traces", attribute=attribute)
            _get(collector, "/traces", attribute=attribute, service=service)
            if signal == "logs":
                text = str(value).encode("utf-8", "surrogatepass")
                _get(collector, "/api/logs", logger=text, q=text[:50])
        trace_id = item.get("trace_id")
        if trace_id:
            _get(collector, "/api/logs", trace_id=trace_id.hex())
            _get(collector, "/logs", trace_id=trace_id.hex()[:6])
            _get(collector, "/trace", id=trace_id.hex()[:5])


@st.composite
def exports(draw):
    signal = draw(st.sampled_from(sorted(hostile.REQUESTS)))
    service = hostile.new_service()
    return signal, service, draw(hostile.REQUESTS[signal](service)), draw(st.sampled_from(sorted(CONTENT_TYPES)))


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(export=exports())
def test_no_export_request_breaks_a_page(collector, export):
    signal, service, request, encoding = export
    body = hostile.to_json(signal, request) if encoding == "json" else hostile.to_protobuf(signal, request)
    status, _, reply = collector.request("POST", f"/v1/{signal}", body, {"Content-Type": CONTENT_TYPES[encoding]})
    assert status == 200, (status, reply[:500])  # all of it is valid OTLP: stored, or rejected in part
    _pages_showing(collector, service, signal, request)


# -- the cases that broke it once --------------------------------------------------------

def _stored(collector, signal, document):
    status, reply = collector.post_json(signal, document)
    assert status == 200, reply
    return reply


def test_non_string_attributes_are_stored_as_text_in_derived_columns(collector):
    trace_id, spans = payloads.request_trace("hostile-text", "/x")
    spans[0]["attributes"] = [
        {"key": "http.request.method", "value": {"arrayValue": {"values": [{"stringValue": "GET"}]}}},
        {"key": "http.route", "value": {"doubleValue": "NaN"}},
        {"key": "enduser.id", "value": {"kvlistValue": {"values": [{"key": "id", "value": {"intValue": "7"}}]}}},
        {"key": "http.response.status_code", "value": {"stringValue": "503"}},
        {"key": "ratio", "value": {"doubleValue": "-Infinity"}},
    ]
    _stored(collector, "traces", payloads.traces("hostile-text", spans))
    routes = collector.api("/routes", service="hostile-text")["routes"]
    assert [(r["method"], r["route"], r["errors"]) for r in routes] == [('["GET"]', "NaN", 1)]
    trace = collector.api(f"/traces/{trace_id}")
    root = trace["spans"][0]
    assert root["user_id"] == '{"id":7}' and root["http_status"] == 503
    assert root["attributes"]["ratio"] == "-Infinity" and root["attributes"]["http.route"] == "NaN"
    for path in ("/", "/traces", f"/traces/{trace_id}"):
        assert collector.request("GET", f"{path}?service=hostile-text")[0] == 200


def test_log_event_name_kvlist_and_a_gauge_of_infinity(collector):
    logs = payloads.plain_logs("hostile-logs", "hello")
    record = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"].append({"key": "event.name", "value": {"kvlistValue": {"values": []}}})
    _stored(collector, "logs", logs)
    metrics = payloads.runtime_metrics("hostile-metrics", points=2)
    gauge = metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][3]
    assert gauge["name"] == "process.cpu.utilization"
    gauge["gauge"]["dataPoints"][1]["asDouble"] = "Infinity"
    _stored(collector, "metrics", metrics)
    status, _, body = collector.request("GET", "/api/metrics/process.cpu.utilization?service=hostile-metrics")
    series = _strict_json(body)["series"]
    assert status == 200 and [value for _, value in series[0]["points"]] == [0.05, None]
    assert collector.request("GET", "/metrics?service=hostile-metrics")[0] == 200


def test_error_events_of_the_wrong_shape_are_coerced_or_left_out(collector):
    body = payloads.error_event_body(fingerprint="fp-hostile-shape")
    body["frames"][0]["lineno"] = "42"
    body["frames"][1]["lineno"] = "forty"
    body["breadcrumbs"] = [{"timestamp": 1e12, "message": "far future"}, {"timestamp": "soon", "message": 5}]
    body["chain"] = 5
    body["request"] = [1, 2]
    body["handled"] = "no"
    body["extra"] = {"ratio": float("nan")}
    _stored(collector, "logs", payloads.error_logs("hostile-errors", body))
    group = collector.api("/errors", service="hostile-errors")["groups"][0]
    event = collector.api(f"/errors/{group['id']}")["latest_event"]["event"]
    assert [frame.get("lineno") for frame in event["frames"]] == [42, None]
    assert event["breadcrumbs"] == [{"message": "far future"}, {"timestamp": "soon", "message": "5"}]
    assert "chain" not in event and "request" not in event and "handled" not in event
    assert event["extra"] == {"ratio": "NaN"}
    assert collector.request("GET", f"/errors/{group['id']}")[0] == 200


def test_timestamps_past_2_63_are_kept(collector):
    trace_id, spans = payloads.request_trace("hostile-time", "/late", calls=[("SELECT 1", "sql", 1.0)])
    spans[0]["startTimeUnixNano"] = str((1 << 63) + 5)
    spans[0]["endTimeUnixNano"] = str((1 << 64) - 1)
    spans[1]["endTimeUnixNano"] = str(1 << 63)
    _stored(collector, "traces", payloads.traces("hostile-time", spans))
    stored = {span["name"]: span for span in collector.api(f"/traces/{trace_id}")["spans"]}
    assert stored["GET /late"]["start_ns"] == stored["GET /late"]["end_ns"] == (1 << 63) - 1
    assert stored["SELECT"]["end_ns"] == (1 << 63) - 1
    status, reply = collector.post_json("traces", payloads.traces("hostile-time", [
        {**spans[0], "startTimeUnixNano": str(1 << 64)}]))
    assert status == 400 and "uint64" in reply["message"]
    assert collector.request("GET", f"/traces/{trace_id}")[0] == 200


def test_lone_surrogates_become_replacement_characters(collector):
    trace_id, spans = payloads.request_trace("hostile-surrogate", "/s")
    spans[0]["name"] = "DEBUG"
    escaped = '"a\\ud800b\\\\ud800\\ud83d\\ude00"'  # a lone half, an escaped backslash, a pair
    body = json.dumps(payloads.traces("hostile-surrogate", spans)).replace('"DEBUG"', escaped)
    status, _, reply = collector.request("POST", "/v1/traces", body.encode(), {"Content-Type": "application/json"})
    assert status == 200, reply
    names = [span["name"] for span in collector.api(f"/traces/{trace_id}")["spans"]]
    assert "a\ufffdb\\ud800\U0001F600" in names


BAD_PARAMETERS = [
    ("/api/services", {"since": "nan"}), ("/api/services", {"since": "inf"}),
    ("/api/services", {"since": "9" * 400}), ("/api/services", {"since": "1e400d"}),
    ("/api/traces", {"start": "nan"}), ("/api/traces", {"start": "inf"}), ("/api/traces", {"start": "-inf"}),
    ("/api/traces", {"start": "1e300"}), ("/api/traces", {"start": "9999-12-31T23:59:59"}),
    ("/api/traces", {"end": "nan"}), ("/api/traces", {"min_duration_ms": "nan"}),
    ("/api/traces", {"min_duration_ms": "inf"}), ("/api/traces", {"min_duration_ms": "1e300"}),
    ("/api/traces", {"min_duration_ms": "-1"}), ("/api/traces", {"limit": "nan"}),
    ("/api/traces", {"limit": "-5"}), ("/api/traces", {"limit": "9" * 5000}),
    ("/api/traces", {"status": "999x"}), ("/api/slow-calls", {"sort": "nan"}),
    ("/api/errors/" + "9" * 30, {}), ("/api/errors/99999999999999999999", {}),
    ("/api/metrics", {"service": "a\x00b"}),
    ("/api/errors", {"state": "closed"}), ("/api/errors", {"state": "a\x00b"}), ("/api/errors/1", {"since": "nan"}),
    ("/api/slow-calls", {"since": "inf", "all": "1"}),
    ("/api/services/x/series", {"step": "nan"}), ("/api/services/x/series", {"step": "inf"}),
    ("/api/services/x/series", {"step": "-1"}), ("/api/services/x/series", {"step": "5 parsecs"}),
    ("/api/services/x/series", {"since": "nan"}), ("/api/services/x/series", {"end": "1e300"}),
    ("/api/services/x", {"since": "inf"}), ("/api/metric-names", {"start": "-inf"}),
    ("/api/services/x/metrics/process.cpu.time", {"step": "1e9"}),
    ("/api/services/x/metrics/process.cpu.time", {"since": "9" * 400}),
    ("/api/traces", {"attribute": "no-equals-sign"}), ("/api/traces", {"attribute": "=value"}),
    ("/api/traces", {"attribute": "k" * 5000 + "=v"}), ("/api/traces", {"attribute": "k=" + "v" * 5000}),
    ("/api/traces", {"max_duration_ms": "nan"}), ("/api/traces", {"max_duration_ms": "-inf"}),
    ("/api/traces", {"trace_id": "not-hex"}), ("/api/traces", {"trace_id": "f" * 40}),
    ("/api/traces", {"until": "nan"}), ("/api/logs", {"since": "nan"}), ("/api/logs", {"until": "1e300"}),
    ("/api/logs", {"level": "0"}), ("/api/logs", {"level": "shouting"}), ("/api/logs", {"trace_id": "%%"}),
    ("/api/logs", {"limit": "-1"}), ("/api/logs", {"logger": "a\x00b"}),
]


@pytest.mark.parametrize("path, params", BAD_PARAMETERS)
def test_bad_api_parameters_get_400_with_a_reason(collector, path, params):
    status, _, body = collector.request("GET", f"{path}?{urlencode(params)}")
    assert status == 400 and _strict_json(body)["error"], (status, body)
    page = path.replace("/api", "", 1) or "/"
    assert collector.request("GET", f"{page}?{urlencode(params)}")[0] in (400, 404)


def test_huge_but_valid_parameters_are_answered(collector):
    for params in ({"limit": "9" * 30}, {"since": "9" * 30}, {"start": "0", "end": str(int(time.time()))},
                   {"min_duration_ms": "9000000000000"}):
        status, _, body = collector.request("GET", f"/api/traces?{urlencode(params)}")
        assert status == 200, (params, body)
    for params in ({"step": "9" * 400}, {"step": "999999999999999w"}, {"step": "0"}, {"since": "9" * 30},
                   {"start": "0", "end": str(int(time.time())), "step": "1ms"}):
        for path in ("/api/services/x/series", "/api/services/x/metrics/process.cpu.time"):
            status, _, body = collector.request("GET", f"{path}?{urlencode(params)}")
            assert status == 200, (path, params, body)
    assert collector.request("GET", "/api/errors/12345678")[0] == 404


def test_parent_cycles_and_deep_traces_render(collector):
    trace_id = payloads.new_trace_id()
    ids = [payloads.new_span_id() for _ in range(1500)]
    chain = [payloads.span(trace_id, span_id, f"level {n}", parent_id=ids[n - 1] if n else "", kind=2 if not n else 1)
             for n, span_id in enumerate(ids)]  # deeper than Python's recursion limit
    a, b = payloads.new_span_id(), payloads.new_span_id()
    cycle = [payloads.span(trace_id, a, "a", parent_id=b), payloads.span(trace_id, b, "b", parent_id=a)]
    _stored(collector, "traces", payloads.traces("hostile-shapes", chain + cycle))
    status, _, html = collector.request("GET", f"/traces/{trace_id}")
    assert status == 200 and b"level 1499" in html
    assert f'id="span-{a}"'.encode() in html and f'id="span-{b}"'.encode() in html  # each shown once


def test_the_report_renders_whatever_is_stored(collector):
    """After the tests above: ``spyglass report`` over everything they stored."""
    from spyglass.collector.report import render_report

    for width in (40, 80, 200):
        text = render_report(collector.url, WINDOW["since"], width=width)
        assert "hostile" in text


# -- what a POST to the API may carry ------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
_POST_BODIES = st.one_of(
    _JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["state", "State", "", "\x00"]), _JSON_VALUES, max_size=2).map(
        lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.sampled_from(["open", "resolved", "ignored"]).map(lambda state: f'{{"state": "{state}"}}'.encode()),
)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=_POST_BODIES, content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                        "text/plain", "", "application/x-www-form-urlencoded"]),
       target=st.sampled_from(["group", "missing", "huge", "text", "other"]))
def test_no_post_body_breaks_a_state_change(collector, body, content_type, target):
    """Whatever a POST to the API carries: a 2xx or a 4xx with a reason, and a group stays in a state."""
    if not collector.api("/errors", service="hostile-post", state="all")["groups"]:
        event = payloads.error_event_body(fingerprint="fp-post")
        _stored(collector, "logs", payloads.error_logs("hostile-post", event))
    (group,) = collector.api("/errors", service="hostile-post", state="all")["groups"]
    path = {"group": f"/api/errors/{group['id']}", "missing": "/api/errors/99999999", "huge": "/api/errors/" + "9" * 40,
            "text": "/api/errors/abc", "other": "/api/services"}[target]
    sent = {"Content-Type": content_type} if content_type else {}
    status, headers, reply = collector.request("POST", path, body, sent)
    assert status < 500 and headers["Content-Type"] == "application/json", (status, reply[:300])
    answer = _strict_json(reply)
    assert (status == 200) == ("error" not in answer), answer
    assert collector.api(f"/errors/{group['id']}")["state"] in ("open", "resolved", "ignored")
