"""OTLP/JSON export requests to a ``Batch``, checking every field's type on the way.

OTLP's JSON mapping is proto3's with two differences (hex trace and span ids, integer
enums), and protobuf's own JSON parser is ~100x slower than reading the dicts directly,
so we read them directly. A field of the wrong type refuses the whole request (400);
unknown fields are ignored, as the OTLP specification requires of receivers.
"""
import json

from .derive import error_from_log, error_from_span_event, span_row
from .model import MAX_VALUE_DEPTH, Batch, Resource, dumps
from .wire import BadRequest

_ROOT_KEYS = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
_REJECTED_KEYS = {"traces": "rejectedSpans", "metrics": "rejectedDataPoints", "logs": "rejectedLogRecords"}
_SPAN_KINDS = {f"SPAN_KIND_{name}": number for number, name in enumerate(
    ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_TEMPORALITIES = {"AGGREGATION_TEMPORALITY_UNSPECIFIED": 0, "AGGREGATION_TEMPORALITY_DELTA": 1,
                  "AGGREGATION_TEMPORALITY_CUMULATIVE": 2}
_METRIC_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def decode(signal, data):
    """A ``Batch`` from the JSON export request of ``signal``."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    root = _object(document, "request")
    batch = Batch()
    _READERS[signal](_list(root, _ROOT_KEYS[signal]), batch)
    return batch


def success(signal, batch):
    """The export response as JSON, with a partial success when something was rejected."""
    if not batch.rejected:
        return b"{}"
    partial = {_REJECTED_KEYS[signal]: batch.rejected, "errorMessage": batch.rejected_reason}
    return json.dumps({"partialSuccess": partial}).encode()


def failure(code, message):
    """A ``google.rpc.Status`` as JSON."""
    return json.dumps({"code": code, "message": message}).encode()


# -- typed access ------------------------------------------------------------------------

def _wrong(where, expected, value):
    shown = json.dumps(value)[:60] if not isinstance(value, (dict, list)) else type(value).__name__
    return BadRequest(400, f"{where}: expected {expected}, got {shown}")


def _object(value, where):
    if value is None:
        return {}
    if type(value) is not dict:
        raise _wrong(where, "an object", value)
    return value


def _list(parent, key):
    value = parent.get(key)
    if value is None:
        return ()
    if type(value) is not list:
        raise _wrong(key, "an array", value)
    return value


def _string(parent, key):
    value = parent.get(key, "")
    if type(value) is not str:
        raise _wrong(key, "a string", value)
    return value


def _int(parent, key, names=None):
    """An int64 field: JSON number or decimal string (OTLP allows both); enums also by name."""
    value = parent.get(key, 0)
    if type(value) is int:
        return value
    if type(value) is str:
        if names and value in names:
            return names[value]
        try:
            return int(value)
        except ValueError:
            pass
    elif type(value) is float and value.is_integer():
        return int(value)
    raise _wrong(key, "an integer", value)


def _number(parent, key):
    value = parent.get(key, 0)
    if type(value) in (int, float):
        return value
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            pass
    raise _wrong(key, "a number", value)


def _hex_id(parent, key, size):
    """A hex id as lowercase hex; ``None`` when present but not ``size`` bytes of hex."""
    value = parent.get(key, "")
    if type(value) is not str:
        raise _wrong(key, "a hex string", value)
    if not value:
        return ""
    if len(value) != 2 * size:
        return None
    try:
        bytes.fromhex(value)
    except ValueError:
        return None
    return value.lower()


def _value(any_value, depth=0):
    """A Python value from an OTLP ``AnyValue`` object."""
    if depth > MAX_VALUE_DEPTH:
        raise BadRequest(400, f"values nested deeper than {MAX_VALUE_DEPTH} levels")
    if type(any_value) is not dict:
        raise _wrong("value", "an AnyValue object", any_value)
    for key, value in any_value.items():
        if key == "stringValue":
            if type(value) is not str:
                raise _wrong(key, "a string", value)
            return value
        if key == "intValue":
            return _int(any_value, key)
        if key == "doubleValue":
            return _number(any_value, key)
        if key == "boolValue":
            if type(value) is not bool:
                raise _wrong(key, "a boolean", value)
            return value
        if key == "arrayValue":
            return [_value(item, depth + 1) for item in _list(_object(value, key), "values")]
        if key == "kvlistValue":
            return _attributes(_list(_object(value, key), "values"), depth + 1)
        if key == "bytesValue":
            if type(value) is not str:
                raise _wrong(key, "a base64 string", value)
            return value
    return None


def _attributes(key_values, depth=0):
    attributes = {}
    for kv in key_values:  # the hot loop of ingest: non-empty strings take the short way
        key = kv.get("key") if type(kv) is dict else None
        if type(key) is not str:
            raise _wrong("attributes", "objects with a string key", kv)
        value = kv.get("value") or {}
        text = value.get("stringValue") if type(value) is dict else None
        attributes[key] = text if type(text) is str and text else _value(value, depth)
    return attributes


def _resource(batch, parent):
    attributes = _attributes(_list(_object(parent.get("resource"), "resource"), "attributes"))
    found = Resource.from_attributes(attributes)
    return batch.resources.setdefault(found.key, found)


def _scopes(resource_item, key):
    for scope_item in _list(_object(resource_item, "resource item"), key):
        yield _object(scope_item, key)


# -- traces ------------------------------------------------------------------------------

def _read_traces(resource_spans, batch):
    for resource_item in resource_spans:
        resource = _resource(batch, _object(resource_item, "resourceSpans"))
        errors_from_spans = resource.sdk != "spyglass"  # spyglass sends full error events as logs
        for scope_item in _scopes(resource_item, "scopeSpans"):
            scope = _string(_object(scope_item.get("scope"), "scope"), "name")
            for span in _list(scope_item, "spans"):
                _read_span(_object(span, "span"), resource, scope, errors_from_spans, batch)


def _read_span(span, resource, scope, errors_from_spans, batch):
    trace_id, span_id = _hex_id(span, "traceId", 16), _hex_id(span, "spanId", 8)
    parent_id = _hex_id(span, "parentSpanId", 8)
    attributes = _attributes(_list(span, "attributes"))
    events = [_event(_object(event, "event")) for event in _list(span, "events")]
    links = [_link(_object(link, "link")) for link in _list(span, "links")]
    status = _object(span.get("status"), "status")
    start_ns, end_ns = _int(span, "startTimeUnixNano"), _int(span, "endTimeUnixNano")
    if not trace_id or not span_id or parent_id is None \
            or trace_id == "0" * 32 or span_id == "0" * 16:
        batch.reject("span with an invalid trace or span id")
        return
    batch.spans.append(span_row(
        resource, scope, trace_id, span_id, parent_id, _string(span, "name"),
        _int(span, "kind", _SPAN_KINDS), start_ns, end_ns, _int(status, "code", _STATUS_CODES),
        _string(status, "message"), attributes, events, links,
    ))
    if errors_from_spans:
        for event in events:
            if event["name"] == "exception":
                batch.errors.append(error_from_span_event(
                    resource, trace_id, span_id, attributes, event["time_ns"] or end_ns, event["attributes"]))


def _event(event):
    return {"name": _string(event, "name"), "time_ns": _int(event, "timeUnixNano"),
            "attributes": _attributes(_list(event, "attributes"))}


def _link(link):
    return {"trace_id": _hex_id(link, "traceId", 16) or "", "span_id": _hex_id(link, "spanId", 8) or "",
            "attributes": _attributes(_list(link, "attributes"))}


# -- logs --------------------------------------------------------------------------------

def _read_logs(resource_logs, batch):
    for resource_item in resource_logs:
        resource = _resource(batch, _object(resource_item, "resourceLogs"))
        for scope_item in _scopes(resource_item, "scopeLogs"):
            for record in _list(scope_item, "logRecords"):
                _read_log(_object(record, "logRecord"), resource, batch)


def _read_log(record, resource, batch):
    attributes = _attributes(_list(record, "attributes"))
    event_name = _string(record, "eventName") or attributes.get("event.name")
    if event_name and "event.name" not in attributes:
        attributes["event.name"] = event_name
    body = _value(record["body"]) if record.get("body") is not None else None
    body = body if isinstance(body, str) or body is None else dumps(body)
    time_ns = _int(record, "timeUnixNano") or _int(record, "observedTimeUnixNano")
    severity = _int(record, "severityNumber", None)
    trace_id, span_id = _hex_id(record, "traceId", 16), _hex_id(record, "spanId", 8)
    if trace_id is None or span_id is None:
        batch.reject("log record with an invalid trace or span id")
        return
    trace_id, span_id = trace_id or None, span_id or None
    batch.logs.append((
        time_ns, resource.key, resource.service, severity, _string(record, "severityText") or None,
        body, trace_id, span_id, event_name or None, dumps(attributes),
    ))
    error = error_from_log(resource, time_ns, severity, body, trace_id, span_id, attributes)
    if error:
        batch.errors.append(error)


# -- metrics -----------------------------------------------------------------------------

def _read_metrics(resource_metrics, batch):
    for resource_item in resource_metrics:
        resource = _resource(batch, _object(resource_item, "resourceMetrics"))
        for scope_item in _scopes(resource_item, "scopeMetrics"):
            for metric in _list(scope_item, "metrics"):
                _read_metric(_object(metric, "metric"), resource, batch)


def _read_metric(metric, resource, batch):
    name, unit = _string(metric, "name"), _string(metric, "unit")
    kind = next((k for k in _METRIC_KINDS if k in metric), None)
    if kind is None:
        batch.reject(f"metric {name!r} has no data")
        return
    data = _object(metric[kind], kind)
    stored_kind = "exponential_histogram" if kind == "exponentialHistogram" else kind
    monotonic = data.get("isMonotonic", False)
    if type(monotonic) is not bool:
        raise _wrong("isMonotonic", "a boolean", monotonic)
    temporality = _int(data, "aggregationTemporality", _TEMPORALITIES)
    for point in _list(data, "dataPoints"):
        point = _object(point, "dataPoint")
        batch.metrics.append((
            _int(point, "timeUnixNano"), resource.key, resource.service, resource.instance, name, unit,
            stored_kind, int(monotonic), temporality, dumps(_attributes(_list(point, "attributes"))),
            *_point_values(stored_kind, point),
        ))


def _point_values(kind, point):
    """``(value, count, sum, buckets)`` of a data point; a distribution's value is its mean."""
    if kind in ("gauge", "sum"):
        return (_int(point, "asInt") if "asInt" in point else _number(point, "asDouble")), None, None, None
    count, total = _int(point, "count"), _number(point, "sum")
    buckets = None
    if kind == "histogram":
        counts = [_int({"c": c}, "c") for c in _list(point, "bucketCounts")]
        bounds = [_number({"b": b}, "b") for b in _list(point, "explicitBounds")]
        buckets = dumps({"bounds": bounds, "counts": counts})
    return (total / count if count else None), count, total, buckets


_READERS = {"traces": _read_traces, "logs": _read_logs, "metrics": _read_metrics}
