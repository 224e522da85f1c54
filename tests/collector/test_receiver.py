"""OTLP in, through a real ``spyglass serve``, and back out of its API."""
import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import payloads


def test_otel_sdk_exporter_spans_come_back_with_parent_links(collector, otel_tracer):
    provider = otel_tracer("otel-shop")
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("GET /users/{id}", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "GET", "http.route": "/users/{id}",
                                                  "http.response.status_code": 200}) as root:
        with tracer.start_as_current_span("SELECT users", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql",
                                                      "db.query.text": "SELECT * FROM users WHERE id = 7"}):
            with tracer.start_as_current_span("decode"):
                pass
    assert provider.force_flush(10_000)
    trace_id = format(root.get_span_context().trace_id, "032x")

    trace = collector.api(f"/traces/{trace_id}")
    by_name = {span["name"]: span for span in trace["spans"]}
    assert set(by_name) == {"GET /users/{id}", "SELECT users", "decode"}
    assert by_name["GET /users/{id}"]["parent_span_id"] is None
    assert by_name["SELECT users"]["parent_span_id"] == by_name["GET /users/{id}"]["span_id"]
    assert by_name["decode"]["parent_span_id"] == by_name["SELECT users"]["span_id"]
    assert by_name["SELECT users"]["attributes"]["db.system"] == "postgresql"
    assert by_name["SELECT users"]["call_label"] == "SELECT * FROM users WHERE id = ?"
    assert trace["resources"][by_name["decode"]["resource_key"]]["service"] == "otel-shop"

    listed = collector.api("/traces", service="otel-shop")["traces"]
    assert [t["trace_id"] for t in listed] == [trace_id]
    assert listed[0]["route"] == "/users/{id}" and listed[0]["span_count"] == 3


def test_otel_sdk_exporter_gzip_and_exception_events_make_error_groups(collector, otel_tracer):
    provider = otel_tracer("otel-gzip", compression="gzip")
    tracer = provider.get_tracer("tests")
    for _ in range(2):
        with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/pay", "enduser.id": "u9"}) as span:
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR))
    assert provider.force_flush(10_000)

    services = {s["service"]: s for s in collector.api("/services")["services"]}
    assert services["otel-gzip"]["requests"] == 2
    assert services["otel-gzip"]["error_rate"] == 1.0
    groups = collector.api("/errors", service="otel-gzip")["groups"]
    assert len(groups) == 1
    assert groups[0]["type"] == "ZeroDivisionError" and groups[0]["count"] == 2 and groups[0]["users"] == 1
    detail = collector.api(f"/errors/{groups[0]['id']}")
    frames = detail["latest_event"]["event"]["frames"]
    assert frames and frames[-1]["function"] == "test_otel_sdk_exporter_gzip_and_exception_events_make_error_groups"


def test_official_metric_exporter_is_received(collector):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{collector.url}/v1/metrics"),
                                           export_interval_millis=60_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "otel-metrics"}))
    provider.get_meter("tests").create_counter("jobs.done").add(5, {"queue": "mail"})
    provider.get_meter("tests").create_histogram("job.duration", unit="s").record(0.25)
    provider.force_flush(10_000)
    provider.shutdown()

    latest = {m["name"]: m for m in collector.api("/metrics", service="otel-metrics")["metrics"]}
    assert latest["jobs.done"]["value"] == 5 and latest["jobs.done"]["attributes"] == {"queue": "mail"}
    assert latest["job.duration"]["count"] == 1 and latest["job.duration"]["sum"] == 0.25


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_json_spans_with_hex_ids_and_int64_as_strings_or_numbers(collector, gzipped):
    service = f"json-{'gzip' if gzipped else 'plain'}"
    trace_id, spans = payloads.request_trace(service, "/orders/{id}", calls=[("SELECT 1", "sql", 3.0)])
    status, reply = collector.post_json("traces", payloads.traces(service, spans), gzipped=gzipped)
    assert (status, reply) == (200, {})
    trace = collector.api(f"/traces/{trace_id}")
    assert [s["span_id"] for s in trace["spans"]] == [s["spanId"] for s in spans]
    assert trace["spans"][1]["parent_span_id"] == spans[0]["spanId"]
    assert trace["spans"][0]["duration_ms"] == pytest.approx(20.0)
    assert trace["spans"][0]["attributes"]["http.response.status_code"] == 200


def test_protobuf_body_gets_a_protobuf_response(collector):
    trace_id, spans = payloads.request_trace("proto-raw", "/a")
    request = ExportTraceServiceRequest()
    from google.protobuf import json_format

    document = payloads.traces("proto-raw", spans)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # proto3 JSON wants base64 ids
        for key in ("traceId", "spanId"):
            span[key] = __import__("base64").b64encode(bytes.fromhex(span[key])).decode()
    json_format.ParseDict(document, request)
    for encoding in (None, "gzip"):
        body = request.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}
        if encoding:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        status, reply_headers, reply = collector.request("POST", "/v1/traces", body, headers)
        assert status == 200 and reply_headers["Content-Type"] == "application/x-protobuf"
        assert not ExportTraceServiceResponse.FromString(reply).HasField("partial_success")
    assert len(collector.api(f"/traces/{trace_id}")["spans"]) == 1  # the second send replaced, not doubled


def test_partial_success_reports_rejected_spans(collector):
    trace_id, spans = payloads.request_trace("partial", "/p")
    bad = payloads.span(trace_id, "abc", "bad id")
    status, reply = collector.post_json("traces", payloads.traces("partial", [*spans, bad]))
    assert status == 200
    assert reply["partialSuccess"]["rejectedSpans"] == 1
    assert "invalid" in reply["partialSuccess"]["errorMessage"]
    assert len(collector.api(f"/traces/{trace_id}")["spans"]) == 1


def test_spyglass_error_events_group_by_fingerprint_with_full_detail(collector):
    trace_id, spans = payloads.request_trace("shop", "/checkout", method="POST", status=500, user="user-1")
    collector.post_json("traces", payloads.traces("shop", spans))
    body = payloads.error_event_body()
    collector.post_json("logs", payloads.plain_logs("shop", "charging card", trace_id, spans[0]["spanId"]),
                        gzipped=True)
    for user in ("user-1", "user-2", "user-1"):
        status, _ = collector.post_json("logs", payloads.error_logs("shop", body, trace_id, spans[0]["spanId"],
                                                                    user=user), gzipped=True)
        assert status == 200

    groups = collector.api("/errors", service="shop")["groups"]
    assert len(groups) == 1
    group = groups[0]
    assert (group["fingerprint"], group["count"], group["users"]) == ("fp-value-error", 3, 2)
    assert group["culprit"] == "app.parse in parse"
    assert group["first_seen_ns"] <= group["last_seen_ns"]
    detail = collector.api(f"/errors/{group['id']}")
    event = detail["latest_event"]["event"]
    assert event["frames"][0]["vars"] == {"cart": "'[1, 2]'", "total": "0"}
    assert event["chain"][0]["type"] == "KeyError"
    assert event["breadcrumbs"][0]["category"] == "sql"
    assert detail["latest_event"]["trace_id"] == trace_id
    assert [log["body"] for log in detail["logs"] if log["event_name"] is None] == ["charging card"]
    assert len(detail["events"]) == 3


def test_metrics_series_and_latest(collector):
    status, reply = collector.post_json("metrics", payloads.runtime_metrics("metered", points=4))
    assert (status, reply) == (200, {})
    latest = {m["name"]: m for m in collector.api("/metrics", service="metered")["metrics"]}
    assert latest["process.memory.usage"]["value"] == 53_000_000
    assert latest["http.server.request.duration"]["count"] == 4
    cpu = collector.api("/metrics/process.cpu.time", service="metered", since="1h")["series"]
    assert len(cpu) == 1 and cpu[0]["as_rate"] and cpu[0]["attributes"] == {"cpu.mode": "user"}
    assert [round(v, 3) for _, v in cpu[0]["rate"]] == [0.15, 0.15, 0.15]


def test_routes_percentiles_and_error_rate(collector):
    for duration, status in [(10, 200)] * 18 + [(100, 200), (300, 503)]:
        _, spans = payloads.request_trace("stats", "/items/{id}", status=status, duration_ms=duration)
        collector.post_json("traces", payloads.traces("stats", spans))
    routes = collector.api("/routes", service="stats")["routes"]
    assert len(routes) == 1
    route = routes[0]
    assert route["name"] == "GET /items/{id}" and route["requests"] == 20
    assert route["error_rate"] == pytest.approx(0.05)
    assert (route["p50_ms"], route["p95_ms"], route["p99_ms"]) == (10.0, 100.0, 300.0)
    failed = collector.api("/traces", service="stats", status="5xx")["traces"]
    assert len(failed) == 1 and failed[0]["http_status"] == 503
    slow = collector.api("/traces", service="stats", min_duration_ms=50)["traces"]
    assert sorted(t["duration_ms"] for t in slow) == [100.0, 300.0]
    assert len(collector.api("/traces", service="stats", errors=1)["traces"]) == 1


def test_slow_calls_group_by_statement_and_rank(collector):
    calls = [("SELECT * FROM orders WHERE id = 1", "sql", 40.0), ("SELECT * FROM orders WHERE id = 2", "sql", 60.0),
             ("payments.example", "remote", 150.0)] + [("SELECT 1", "sql", 1.0)] * 5
    _, spans = payloads.request_trace("calls", "/orders", calls=calls)
    collector.post_json("traces", payloads.traces("calls", spans))

    by_total = collector.api("/slow-calls", service="calls", all=1)["calls"]  # none is marked slow
    assert [(c["label"], c["count"]) for c in by_total] == [
        ("GET payments.example", 1), ("SELECT * FROM orders WHERE id = ?", 2), ("SELECT ?", 5)]
    assert by_total[1]["total_ms"] == pytest.approx(100.0) and by_total[1]["p95_ms"] == pytest.approx(60.0)
    by_count = collector.api("/slow-calls", service="calls", sort="count", all=1)["calls"]
    assert by_count[0]["label"] == "SELECT ?"


def test_openapi_document_lists_every_endpoint(collector):
    document = collector.api("/openapi.json")
    assert document["openapi"].startswith("3.")
    for path in ("/api/services", "/api/routes", "/api/traces", "/api/traces/{trace_id}", "/api/slow-calls",
                 "/api/errors", "/api/errors/{group_id}", "/api/metrics", "/api/metrics/{name}"):
        assert path in document["paths"]
    status, _, body = collector.request("GET", "/api/nope")
    assert status == 404 and "openapi" in json.loads(body)["error"]
    status, _, body = collector.request("GET", "/api/traces?since=yesterday")
    assert status == 400 and "duration" in json.loads(body)["error"]
