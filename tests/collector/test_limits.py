"""Per-request limits, and large bodies read item by item to the same rows as small ones."""
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spyglass.collector import model, otlp_json, otlp_proto
from spyglass.collector.model import MAX_ATTRIBUTES

from . import payloads

SERVICE = "limits"


def _large_documents():
    """A traces, a logs and a metrics request, each over 1 MB as JSON."""
    spans = []
    for number in range(3000):
        spans += payloads.request_trace(SERVICE, f"/r{number % 7}", calls=[("SELECT 1", "sql", 1.0)],
                                        user=f"u{number}")[1]
    spans[1]["events"] = [{"name": "exception", "timeUnixNano": "5", "attributes": payloads.attributes(
        {"exception.type": "KeyError", "exception.stacktrace": 'File "a.py", line 3, in f'})}]
    logs = payloads.error_logs(SERVICE, payloads.error_event_body())
    records = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    records *= 1000
    metrics = payloads.runtime_metrics(SERVICE, points=1000)
    metrics["resourceMetrics"] += payloads.runtime_metrics(SERVICE, points=1000, pid=7)["resourceMetrics"]
    for group in metrics["resourceMetrics"]:
        for metric in group["scopeMetrics"][0]["metrics"]:
            for point in next(iter(v for v in metric.values() if isinstance(v, dict)))["dataPoints"]:
                point.setdefault("attributes", []).extend(payloads.attributes({"note": "n" * 200}))
    return {"traces": payloads.traces(SERVICE, spans, sdk="opentelemetry"), "logs": logs, "metrics": metrics}


def _reordered(document):
    """The same request with each object's keys reversed: parts before their resource or scope."""
    if isinstance(document, dict):
        return {key: _reordered(document[key]) for key in reversed(list(document))}
    if isinstance(document, list):
        return [_reordered(item) for item in document]
    return document


def _protobuf(signal, document):
    request = {"traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest,
               "metrics": ExportMetricsServiceRequest}[signal]()
    document = json.loads(json.dumps(document))
    for group in document.get("resourceSpans", ()):  # proto3 JSON has base64 ids
        for span in group["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                span[key] = payloads.base64_id(span.get(key, ""))
            for event in span.get("events", ()):
                event["timeUnixNano"] = int(event["timeUnixNano"])
    for group in document.get("resourceLogs", ()):
        for record in group["scopeLogs"][0]["logRecords"]:
            for key in ("traceId", "spanId"):
                record[key] = payloads.base64_id(record.get(key, ""))
    return json_format.ParseDict(document, request).SerializeToString()


def _rows(batch):
    return (batch.spans, batch.logs, batch.metrics, sorted(batch.resources),
            [(e.fingerprint, e.type, e.message, e.event) for e in batch.errors], batch.rejected)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
def test_large_bodies_are_read_item_by_item_to_the_same_rows(signal, monkeypatch):
    document = _large_documents()[signal]
    for body in (json.dumps(document).encode(), json.dumps(_reordered(document)).encode()):
        assert len(body) > model.WHOLE_BODY_BYTES
        split = otlp_json.decode(signal, body)
        with monkeypatch.context() as patch:
            patch.setattr(model, "WHOLE_BODY_BYTES", len(body))
            whole = otlp_json.decode(signal, body)
        assert _rows(split) == _rows(whole) and split.spans + split.logs + split.metrics
    body = _protobuf(signal, document)
    assert len(body) > model.WHOLE_BODY_BYTES
    split = otlp_proto.decode(signal, body)
    with monkeypatch.context() as patch:
        patch.setattr(model, "WHOLE_BODY_BYTES", len(body))
        whole = otlp_proto.decode(signal, body)
    assert _rows(split) == _rows(whole)


@pytest.mark.parametrize("body", [b'{"resourceSpans": [{"scopeSpans": [{"spans": [{}]}]}]} x',
                                  b'{"resourceSpans": [{"scopeSpans": [{"spans": [{]}]}]}',
                                  b'{"resourceSpans": {"a": 1}}', b'{"resourceSpans": [{"scopeSpans": [5]}]}',
                                  b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"'])
def test_large_bodies_are_checked_as_strictly_as_small_ones(body):
    padded = body.replace(b'{"resourceSpans"', b'{"pad": "' + b" " * (2 << 20) + b'", "resourceSpans"', 1)
    statuses = []
    for data in (body, padded):
        try:
            otlp_json.decode("traces", data)
            statuses.append(200)
        except Exception as exc:  # noqa: BLE001 - the test compares what both paths raise
            statuses.append((type(exc).__name__, getattr(exc, "status", None)))
    assert statuses[0] == statuses[1] and statuses[0] != 200


def test_attributes_beyond_the_limit_are_dropped_and_the_sender_told(collector):
    trace_id, spans = payloads.request_trace(SERVICE, "/wide")
    spans[0]["attributes"] += payloads.attributes({f"k{n}": n for n in range(MAX_ATTRIBUTES + 500)})
    status, reply = collector.post_json("traces", payloads.traces(SERVICE, spans))
    assert status == 200
    partial = reply["partialSuccess"]
    assert partial["rejectedSpans"] == 0 and "attribute values dropped" in partial["errorMessage"]
    stored = collector.api(f"/traces/{trace_id}")["spans"][0]["attributes"]
    assert len(stored) == MAX_ATTRIBUTES and stored["http.route"] == "/wide"


def test_a_request_over_its_budget_keeps_what_fits_and_rejects_the_rest(collector):
    spans = []
    for _ in range(300):
        trace_id, trace = payloads.request_trace(SERVICE, "/budget")
        trace[0]["attributes"] += payloads.attributes({f"k{n}": "v" for n in range(1000)})
        spans += trace
    status, reply = collector.post_json("traces", payloads.traces(SERVICE, spans))
    assert status == 200
    partial = reply["partialSuccess"]
    assert 0 < partial["rejectedSpans"] < 300 and "values per request" in partial["errorMessage"]
    kept = collector.api("/traces", service=SERVICE, route="/budget", limit=1000)["traces"]
    assert len(kept) == 300 - partial["rejectedSpans"]
