"""Hypothesis strategies for OTLP export requests full of hostile values, and their two encodings.

A strategy draws a request as plain data (``("double", nan)``, ``("kvlist", [...])``, a span
as a dict of its fields); ``to_json`` and ``to_protobuf`` encode it as a sender would, each
within what its format can carry (protobuf has no lone surrogates and no int64 beyond int64).
"""
import base64
import json
import math
import os
import time

from hypothesis import strategies as st

NS = 1_000_000_000
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64_MAX = (1 << 64) - 1

#: Attribute keys the collector derives columns from, or that pages show specially.
KEYS = (
    "http.route", "http.request.method", "http.method", "http.response.status_code", "http.status_code",
    "enduser.id", "db.query.text", "db.statement", "db.system", "db.system.name", "spyglass.category",
    "spyglass.count", "spyglass.statement.hash", "server.address", "net.peer.name", "spyglass.stack",
    "spyglass.slow", "event.name", "log.logger", "exception.type", "exception.message",
    "exception.stacktrace", "spyglass.error.fingerprint", "url.path", "url.full",
)
RESOURCE_KEYS = ("host.name", "process.pid", "service.instance.id", "telemetry.sdk.name", "deployment.environment")
METRIC_NAMES = ("process.cpu.utilization", "process.memory.usage", "process.cpu.time", "http.server.request.duration",
                "x/y", "ünï côdé", "")

# -- values ------------------------------------------------------------------------------

texts = st.text(max_size=40) | \
    st.sampled_from(["", "NaN", "Infinity", "GET", "/users/{id}", "\x00", "a" * 300, "<script>x</script>",
                     "{{ 7*7 }}", "\ud800", "\udfff\ud800", "🐍"])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0])
ints = st.integers(*INT64) | st.sampled_from([0, -1, 404, 500, 599, 1000, INT64[0], INT64[1]])

scalars = st.one_of(
    st.tuples(st.just("string"), texts),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("int"), ints),
    st.tuples(st.just("double"), floats),
    st.tuples(st.just("bytes"), st.binary(max_size=20)),
    st.just(("empty", None)),
)
any_values = st.recursive(scalars, lambda inner: st.one_of(
    st.tuples(st.just("array"), st.lists(inner, max_size=4)),
    st.tuples(st.just("kvlist"), st.lists(st.tuples(texts, inner), max_size=4)),
), max_leaves=12)
keys = st.sampled_from(KEYS) | texts
attribute_lists = st.lists(st.tuples(keys, any_values), max_size=8)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | floats | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8)


def _field(good):
    """A field of an error event: mostly of its type, sometimes anything at all."""
    return st.one_of(good, good, json_values)


frames = st.fixed_dictionaries({}, optional={
    "filename": _field(texts), "abs_path": _field(texts), "module": _field(texts), "function": _field(texts),
    "lineno": _field(st.integers(-5, 10**6) | st.sampled_from(["42", "x", 1e30])),
    "in_app": _field(st.booleans()), "pre_context": _field(st.lists(texts, max_size=3)),
    "context_line": _field(texts), "post_context": _field(st.lists(texts, max_size=3)),
    "vars": _field(st.dictionaries(texts, json_values, max_size=3)),
})
breadcrumbs = st.fixed_dictionaries({}, optional={
    "timestamp": _field(st.sampled_from([time.time(), 1e12, -1.0, math.inf, "2024-01-01T00:00:00"])),
    "category": _field(texts), "message": _field(texts), "level": _field(texts),
    "data": _field(st.dictionaries(texts, json_values, max_size=3)),
})
error_events = st.fixed_dictionaries({}, optional={
    "type": _field(texts), "module": _field(texts), "message": _field(texts), "fingerprint": _field(texts),
    "handled": _field(st.booleans()), "level": _field(texts), "timestamp": _field(floats),
    "frames": _field(st.lists(frames | json_values, max_size=4)),
    "chain": _field(st.lists(st.fixed_dictionaries({"relation": texts, "type": texts,
                                                     "frames": st.lists(frames, max_size=2)}), max_size=2)),
    "request": _field(st.dictionaries(texts, json_values, max_size=3)),
    "user": _field(st.dictionaries(st.just("id") | texts, json_values, max_size=2)),
    "tags": _field(st.dictionaries(texts, json_values, max_size=3)),
    "breadcrumbs": _field(st.lists(breadcrumbs | json_values, max_size=3)),
    "stacktrace": _field(texts | st.just('Traceback (most recent call last):\n  File "a.py", line 7, in f\n'
                                         '    x()\nValueError: v')),
    "unknown": json_values,
})

# -- items -------------------------------------------------------------------------------

times = st.one_of(
    st.integers(0, 600).map(lambda ago: time.time_ns() - ago * NS),
    st.integers(0, UINT64_MAX),
    st.sampled_from([0, 1 << 63, (1 << 63) + 1, UINT64_MAX]),
)
enums = st.integers(-3, 8) | st.sampled_from([INT64[1], (1 << 31) - 1, -(1 << 31)])


@st.composite
def spans(draw, trace_id, parent_id=b""):
    start = draw(times)
    return {
        "trace_id": trace_id, "span_id": draw(st.binary(min_size=8, max_size=8) | st.just(bytes(8))),
        "parent_id": parent_id, "name": draw(texts), "kind": draw(enums), "start": start,
        "end": draw(st.just(min(start + 5_000_000, UINT64_MAX)) | times), "status": draw(enums), "message": draw(texts),
        "attributes": draw(attribute_lists),
        "events": draw(st.lists(st.fixed_dictionaries({
            "name": st.sampled_from(["exception", "log"]) | texts, "time": times,
            "attributes": st.lists(st.tuples(st.sampled_from(["exception.type", "exception.message",
                                                              "exception.stacktrace"]) | keys, any_values),
                                   max_size=4)}), max_size=2)),
        "links": draw(st.lists(st.fixed_dictionaries({
            "trace_id": st.binary(min_size=16, max_size=16), "span_id": st.binary(min_size=8, max_size=8),
            "attributes": attribute_lists}), max_size=1)),
    }


@st.composite
def trace_requests(draw, service):
    """Traces: a root span (SERVER) and a few children, from a spyglass or another sender."""
    trace_id = draw(st.binary(min_size=16, max_size=16).filter(any))
    root = draw(spans(trace_id))
    root["kind"] = draw(st.sampled_from([2, 2, 5]) | enums)
    children = draw(st.lists(spans(trace_id, root["span_id"]), max_size=3))
    return {"service": service, "sdk": draw(st.sampled_from(["spyglass", "opentelemetry"])),
            "resource": draw(st.lists(st.tuples(st.sampled_from(RESOURCE_KEYS), any_values), max_size=3)),
            "items": [root, *children]}


@st.composite
def log_requests(draw, service):
    records = []
    for _ in range(draw(st.integers(1, 3))):
        spyglass_error = draw(st.booleans())
        body = ("string", json.dumps(draw(error_events) if draw(st.booleans()) else draw(json_values)))
        records.append({
            "time": draw(times), "severity": draw(st.sampled_from([9, 17, 21]) | enums), "severity_text": draw(texts),
            "body": body if spyglass_error else draw(any_values),
            "attributes": ([("event.name", ("string", "spyglass.error"))] if spyglass_error else [])
            + draw(attribute_lists),
            "event_name": draw(st.just("") | texts),
            "trace_id": draw(st.just(b"") | st.binary(min_size=16, max_size=16)),
        })
    return {"service": service, "sdk": "spyglass", "resource": [], "items": records}


@st.composite
def metric_requests(draw, service):
    metrics = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["gauge", "sum", "histogram"]))
        points = []
        for _ in range(draw(st.integers(1, 3))):
            point = {"time": draw(times), "attributes": draw(attribute_lists)}
            if kind == "histogram":
                point.update(count=draw(st.integers(0, UINT64_MAX)), sum=draw(floats),
                             counts=draw(st.lists(st.integers(0, UINT64_MAX), max_size=3)),
                             bounds=draw(st.lists(floats, max_size=2)))
            else:
                point["value"] = draw(st.tuples(st.just("double"), floats) | st.tuples(st.just("int"), ints))
            points.append(point)
        metrics.append({"name": draw(st.sampled_from(METRIC_NAMES) | texts), "unit": draw(st.sampled_from(
            ["By", "1", "s", "", "{x}"]) | texts), "kind": kind, "monotonic": draw(st.booleans()),
            "temporality": draw(st.sampled_from([1, 2]) | enums), "points": points})
    return {"service": service, "sdk": "spyglass", "resource": [], "items": metrics}


REQUESTS = {"traces": trace_requests, "logs": log_requests, "metrics": metric_requests}


# -- OTLP/JSON ---------------------------------------------------------------------------

def _json_value(value):
    kind, payload = value
    if kind == "string":
        return {"stringValue": payload}
    if kind == "bool":
        return {"boolValue": payload}
    if kind == "int":
        return {"intValue": str(payload) if abs(payload) > 1 << 53 else payload}
    if kind == "double":
        return {"doubleValue": _json_double(payload)}
    if kind == "bytes":
        return {"bytesValue": base64.b64encode(payload).decode()}
    if kind == "array":
        return {"arrayValue": {"values": [_json_value(item) for item in payload]}}
    if kind == "kvlist":
        return {"kvlistValue": {"values": _json_attributes(payload)}}
    return {}


def _json_double(number):
    """As OTLP/JSON writes non-finite doubles (strings)."""
    return number if math.isfinite(number) else {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(number)]


def _json_attributes(pairs):
    return [{"key": key, "value": _json_value(value)} for key, value in pairs]


def _json_resource(request):
    return {"attributes": _json_attributes([("service.name", ("string", request["service"])),
                                            ("telemetry.sdk.name", ("string", request["sdk"])),
                                            *request["resource"]])}


def to_json(signal, request):
    """The request as OTLP/JSON bytes (json.dumps: a non-finite float, if any, as ``NaN``)."""
    if signal == "traces":
        items = [{
            "traceId": span["trace_id"].hex(), "spanId": span["span_id"].hex(),
            "parentSpanId": span["parent_id"].hex(), "name": span["name"], "kind": span["kind"],
            "startTimeUnixNano": str(span["start"]), "endTimeUnixNano": span["end"],
            "status": {"code": span["status"], "message": span["message"]},
            "attributes": _json_attributes(span["attributes"]),
            "events": [{"name": e["name"], "timeUnixNano": str(e["time"]),
                        "attributes": _json_attributes(e["attributes"])} for e in span["events"]],
            "links": [{"traceId": link["trace_id"].hex(), "spanId": link["span_id"].hex(),
                       "attributes": _json_attributes(link["attributes"])} for link in span["links"]],
        } for span in request["items"]]
        document = {"resourceSpans": [{"resource": _json_resource(request),
                                       "scopeSpans": [{"scope": {"name": "hostile"}, "spans": items}]}]}
    elif signal == "logs":
        items = [{
            "timeUnixNano": str(record["time"]), "severityNumber": record["severity"],
            "severityText": record["severity_text"], "body": _json_value(record["body"]),
            "attributes": _json_attributes(record["attributes"]), "eventName": record["event_name"],
            "traceId": record["trace_id"].hex(),
        } for record in request["items"]]
        document = {"resourceLogs": [{"resource": _json_resource(request),
                                      "scopeLogs": [{"scope": {"name": "hostile"}, "logRecords": items}]}]}
    else:
        items = []
        for metric in request["items"]:
            points = []
            for point in metric["points"]:
                encoded = {"timeUnixNano": str(point["time"]), "attributes": _json_attributes(point["attributes"])}
                if metric["kind"] == "histogram":
                    encoded.update(count=str(point["count"]), sum=_json_double(point["sum"]),
                                   bucketCounts=[str(c) for c in point["counts"]],
                                   explicitBounds=[_json_double(b) for b in point["bounds"]])
                elif point["value"][0] == "int":
                    encoded["asInt"] = str(point["value"][1])
                else:
                    encoded["asDouble"] = _json_double(point["value"][1])
                points.append(encoded)
            data = {"dataPoints": points, "aggregationTemporality": metric["temporality"]}
            if metric["kind"] == "sum":
                data["isMonotonic"] = metric["monotonic"]
            items.append({"name": metric["name"], "unit": metric["unit"], metric["kind"]: data})
        document = {"resourceMetrics": [{"resource": _json_resource(request),
                                         "scopeMetrics": [{"scope": {"name": "hostile"}, "metrics": items}]}]}
    return json.dumps(document).encode()


# -- OTLP protobuf -----------------------------------------------------------------------

def _utf8(text):
    """Protobuf strings are UTF-8: lone surrogates cannot be sent."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _int32(number):
    return max(-(1 << 31), min((1 << 31) - 1, number))


def _proto_value(target, value):
    kind, payload = value
    if kind == "string":
        target.string_value = _utf8(payload)
    elif kind == "bool":
        target.bool_value = payload
    elif kind == "int":
        target.int_value = payload
    elif kind == "double":
        target.double_value = payload
    elif kind == "bytes":
        target.bytes_value = payload
    elif kind == "array":
        target.array_value.SetInParent()
        for item in payload:
            _proto_value(target.array_value.values.add(), item)
    elif kind == "kvlist":
        target.kvlist_value.SetInParent()
        _proto_attributes(target.kvlist_value.values, payload)


def _proto_attributes(target, pairs):
    for key, value in pairs:
        kv = target.add(key=_utf8(key))
        _proto_value(kv.value, value)


def _proto_resource(target, request):
    _proto_attributes(target.attributes, [("service.name", ("string", request["service"])),
                                          ("telemetry.sdk.name", ("string", request["sdk"])), *request["resource"]])


def to_protobuf(signal, request):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if signal == "traces":
        message = ExportTraceServiceRequest()
        group = message.resource_spans.add()
        _proto_resource(group.resource, request)
        scope = group.scope_spans.add()
        scope.scope.name = "hostile"
        for span in request["items"]:
            encoded = scope.spans.add(
                trace_id=span["trace_id"], span_id=span["span_id"], parent_span_id=span["parent_id"],
                name=_utf8(span["name"]), kind=_int32(span["kind"]), start_time_unix_nano=span["start"],
                end_time_unix_nano=span["end"])
            encoded.status.code = _int32(span["status"])
            encoded.status.message = _utf8(span["message"])
            _proto_attributes(encoded.attributes, span["attributes"])
            for event in span["events"]:
                added = encoded.events.add(name=_utf8(event["name"]), time_unix_nano=event["time"])
                _proto_attributes(added.attributes, event["attributes"])
            for link in span["links"]:
                _proto_attributes(encoded.links.add(trace_id=link["trace_id"], span_id=link["span_id"]).attributes,
                                  link["attributes"])
    elif signal == "logs":
        message = ExportLogsServiceRequest()
        group = message.resource_logs.add()
        _proto_resource(group.resource, request)
        scope = group.scope_logs.add()
        for record in request["items"]:
            encoded = scope.log_records.add(
                time_unix_nano=record["time"], severity_number=_int32(record["severity"]),
                severity_text=_utf8(record["severity_text"]), trace_id=record["trace_id"],
                event_name=_utf8(record["event_name"]))
            _proto_value(encoded.body, record["body"])
            _proto_attributes(encoded.attributes, record["attributes"])
    else:
        message = ExportMetricsServiceRequest()
        group = message.resource_metrics.add()
        _proto_resource(group.resource, request)
        scope = group.scope_metrics.add()
        for metric in request["items"]:
            encoded = scope.metrics.add(name=_utf8(metric["name"]), unit=_utf8(metric["unit"]))
            data = getattr(encoded, metric["kind"])
            if metric["kind"] == "sum":
                data.is_monotonic = metric["monotonic"]
            if metric["kind"] != "gauge":
                data.aggregation_temporality = _int32(metric["temporality"])
            for point in metric["points"]:
                target = data.data_points.add(time_unix_nano=point["time"])
                _proto_attributes(target.attributes, point["attributes"])
                if metric["kind"] == "histogram":
                    target.count, target.sum = point["count"], point["sum"]
                    target.bucket_counts.extend(point["counts"])
                    target.explicit_bounds.extend(point["bounds"])
                elif point["value"][0] == "int":
                    target.as_int = point["value"][1]
                else:
                    target.as_double = point["value"][1]
    return message.SerializeToString()


def new_service():
    return "hostile-" + os.urandom(4).hex()
