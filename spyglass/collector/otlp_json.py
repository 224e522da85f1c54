"""OTLP/JSON export requests to a ``Batch``, checking every field's type on the way.

OTLP's JSON mapping is proto3's with two differences (hex trace and span ids, integer
enums), and protobuf's own JSON parser is ~100x slower than reading the dicts directly,
so we read them directly. A field of the wrong type refuses the whole request (400);
unknown fields are ignored, as the OTLP specification requires of receivers.

A body up to ``model.WHOLE_BODY_BYTES`` is parsed in one call; a larger one is walked
(``json_walk``) and its items parsed one by one.
"""
import json

from .derive import error_from_log, error_from_span_event, span_row
from .search import add_tags
from .json_walk import Cursor
from . import model
from .model import (
    INT64_MAX, INT64_MIN, ITEM_COST, MAX_ITEM_BYTES, MAX_VALUE_DEPTH, OVER_BUDGET_REASON, SKIPPED,
    UINT64_MAX, Batch, OverBudget, Resource, attribute_double, clamp_time, dumps, finite_or_none, text,
    without_lone_surrogates,
)
from .wire import BadRequest

_REJECTED_KEYS = {"traces": "rejectedSpans", "metrics": "rejectedDataPoints", "logs": "rejectedLogRecords"}
_SPAN_KINDS = {f"SPAN_KIND_{name}": number for number, name in enumerate(
    ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_TEMPORALITIES = {"AGGREGATION_TEMPORALITY_UNSPECIFIED": 0, "AGGREGATION_TEMPORALITY_DELTA": 1,
                  "AGGREGATION_TEMPORALITY_CUMULATIVE": 2}
_METRIC_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def decode(signal, data):
    """A ``Batch`` from the JSON export request of ``signal``."""
    batch = Batch()
    try:
        data = without_lone_surrogates(data)
        if len(data) <= model.WHOLE_BODY_BYTES:
            groups = _groups(_object(json.loads(data), "request"), signal)
        else:
            groups = _split(Cursor(data.decode() if isinstance(data, bytes) else data), signal, batch)
        _READERS[signal](groups, batch)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    return batch


def success(signal, batch):
    """The export response as JSON, with a partial success when something was rejected."""
    if not batch.rejected and not batch.dropped_values:
        return b"{}"
    partial = {_REJECTED_KEYS[signal]: batch.rejected, "errorMessage": batch.message}
    return json.dumps({"partialSuccess": partial}).encode()


def failure(code, message):
    """A ``google.rpc.Status`` as JSON."""
    return json.dumps({"code": code, "message": message}).encode()


def _groups(root, signal):
    """The request as ``(resource, [(scope name, items)])``, the shape the readers take."""
    groups_key, scopes_key, items_key = _KEYS[signal]
    for group in _list(root, groups_key):
        group = _object(group, groups_key)
        yield _object(group.get("resource"), "resource"), _scopes(group, scopes_key, items_key)


def _scopes(group, scopes_key, items_key):
    for scope_group in _list(group, scopes_key):
        scope_group = _object(scope_group, scopes_key)
        yield _scope_name(scope_group.get("scope")), _list(scope_group, items_key)


def _resource_object(value):
    return _object(value, "resource")


def _scope_name(scope):
    return _string(_object(scope, "scope"), "name")


_KEYS = {"traces": ("resourceSpans", "scopeSpans", "spans"), "logs": ("resourceLogs", "scopeLogs", "logRecords"),
         "metrics": ("resourceMetrics", "scopeMetrics", "metrics")}


def _split(cursor, signal, batch):
    """The same shape, read from a large body as the readers get to each part.

    An item larger than ``MAX_ITEM_BYTES`` comes as ``SKIPPED``, as does every item once the
    request is over its budget of values (those are not even built).
    """
    groups_key, scopes_key, items_key = _KEYS[signal]
    for key in cursor.members("request"):
        if key == groups_key:
            for _ in cursor.elements(groups_key):
                yield from _split_parts(cursor, groups_key, "resource", _resource_object, scopes_key,
                                        lambda: _split_scopes(cursor, scopes_key, items_key, batch))
    cursor.end()


def _split_scopes(cursor, scopes_key, items_key, batch):
    for _ in cursor.elements(scopes_key):
        yield from _split_parts(cursor, scopes_key, "scope", _scope_name, items_key,
                                lambda: _split_items(cursor, items_key, batch))


def _split_parts(cursor, where, head_key, head_of, parts_key, parts):
    """``(head_of(head), parts())`` for an object of a head (a resource, a scope) and its parts
    (scope groups, items). Parts before their head are skipped, then read once it is known."""
    head, early = None, []
    for key in cursor.members(where):
        if key == head_key:
            head = head_of(cursor.value())
        elif key == parts_key:
            if head is None:
                early.append(cursor.position)
                cursor.skip()
            else:
                yield head, parts()
    end = cursor.position
    for position in early:
        cursor.position = position
        yield head_of(None) if head is None else head, parts()
    cursor.position = end


def _split_items(cursor, items_key, batch):
    for _ in cursor.elements(items_key):
        if batch.over_budget:
            cursor.skip()
            yield SKIPPED
            continue
        item = cursor.value_within(MAX_ITEM_BYTES)
        yield SKIPPED if item is cursor.TOO_LONG else item


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


def _integer(parent, key, low, high, names=None):
    """An integer field within ``[low, high]``: a JSON number or a decimal string (OTLP allows
    both); enums also by name."""
    value = parent.get(key, 0)
    if type(value) is not int:
        if type(value) is str:
            if names and value in names:
                return names[value]
            try:
                value = int(value)
            except ValueError:
                raise _wrong(key, "an integer", value) from None
        elif type(value) is float and value.is_integer():
            value = int(value)
        else:
            raise _wrong(key, "an integer", value)
    if not low <= value <= high:
        raise BadRequest(400, f"{key}: {value} is outside the {'uint64' if low == 0 else 'int64'} range")
    return value


def _int(parent, key, names=None):
    """An int64 field."""
    value = parent.get(key, 0)
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:  # the common case, in short
        return value
    return _integer(parent, key, INT64_MIN, INT64_MAX, names)


def _uint64(parent, key):
    """A fixed64 field (times, counts): all of uint64 is valid."""
    value = parent.get(key, 0)
    if type(value) is int and 0 <= value <= UINT64_MAX:
        return value
    return _integer(parent, key, 0, UINT64_MAX)


def _time(parent, key):
    return clamp_time(_uint64(parent, key))


def _number(parent, key):
    """A double field, as a float: a JSON number, or a string (OTLP/JSON writes NaN and the
    infinities as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)."""
    value = parent.get(key, 0)
    if type(value) is float:
        return value
    if type(value) in (int, str):
        try:
            return float(value)
        except (ValueError, OverflowError):
            pass
    raise _wrong(key, "a double", value)


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


# -- values ------------------------------------------------------------------------------

def _value(any_value, batch, depth=0):
    """A Python value from an OTLP ``AnyValue`` object, in the form it is stored."""
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
            return attribute_double(_number(any_value, key))
        if key == "boolValue":
            if type(value) is not bool:
                raise _wrong(key, "a boolean", value)
            return value
        if key == "arrayValue":
            values = batch.keep(_list(_object(value, key), "values"))
            return [_value(item, batch, depth + 1) for item in values]
        if key == "kvlistValue":
            return _attributes(_list(_object(value, key), "values"), batch, depth + 1)
        if key == "bytesValue":
            if type(value) is not str:
                raise _wrong(key, "a base64 string", value)
            return value
    return None


def _attributes(key_values, batch, depth=0):
    attributes = {}
    for kv in batch.keep(key_values) if key_values else ():  # the hot loop of ingest
        key = kv.get("key") if type(kv) is dict else None
        if type(key) is not str:
            raise _wrong("attributes", "objects with a string key", kv)
        value = kv.get("value") or {}
        text = value.get("stringValue") if type(value) is dict else None
        attributes[key] = text if type(text) is str and text else _value(value, batch, depth)
    return attributes


def _resource(batch, resource):
    found = Resource.from_attributes(_attributes(_list(resource, "attributes"), batch))
    return batch.resources.setdefault(found.key, found)


# -- traces ------------------------------------------------------------------------------

def _read_traces(groups, batch):
    def read(span, resource, scope):
        span = _object(span, "span")
        trace_id, span_id = _hex_id(span, "traceId", 16), _hex_id(span, "spanId", 8)
        parent_id = _hex_id(span, "parentSpanId", 8)
        attributes = _attributes(_list(span, "attributes"), batch)
        events = [_event(_object(event, "event"), batch) for event in batch.keep(_list(span, "events"))] \
            if "events" in span else ()
        links = [_link(_object(link, "link"), batch) for link in batch.keep(_list(span, "links"))] \
            if "links" in span else ()
        status = _object(span.get("status"), "status")
        start_ns, end_ns = _uint64(span, "startTimeUnixNano"), _uint64(span, "endTimeUnixNano")
        if not trace_id or not span_id or parent_id is None \
                or trace_id == "0" * 32 or span_id == "0" * 16:
            batch.reject("span with an invalid trace or span id")
            return
        row = span_row(
            resource, scope, trace_id, span_id, parent_id, _string(span, "name"),
            _int(span, "kind", _SPAN_KINDS), start_ns, end_ns, _int(status, "code", _STATUS_CODES),
            _string(status, "message"), attributes, events, links,
        )
        batch.spans.append(row)
        add_tags(batch, trace_id, attributes)
        if resource.sdk != "spyglass":  # spyglass sends full error events as logs
            for event in events:
                if event["name"] == "exception":
                    batch.errors.append(error_from_span_event(
                        resource, trace_id, span_id, attributes, event["time_ns"] or end_ns, event["attributes"]))

    batch.read(groups, _resource, read)


def _event(event, batch):
    return {"name": _string(event, "name"), "time_ns": _time(event, "timeUnixNano"),
            "attributes": _attributes(_list(event, "attributes"), batch)}


def _link(link, batch):
    return {"trace_id": _hex_id(link, "traceId", 16) or "", "span_id": _hex_id(link, "spanId", 8) or "",
            "attributes": _attributes(_list(link, "attributes"), batch)}


# -- logs --------------------------------------------------------------------------------

def _read_logs(groups, batch):
    def read(record, resource, scope):
        record = _object(record, "logRecord")
        attributes = _attributes(_list(record, "attributes"), batch)
        event_name = _string(record, "eventName") or attributes.get("event.name")
        if event_name and "event.name" not in attributes:
            attributes["event.name"] = event_name
        body = _value(record["body"], batch) if record.get("body") is not None else None
        body = body if isinstance(body, str) or body is None else dumps(body)
        time_ns = _time(record, "timeUnixNano") or _time(record, "observedTimeUnixNano")
        severity = _int(record, "severityNumber", _SEVERITIES)
        trace_id, span_id = _hex_id(record, "traceId", 16), _hex_id(record, "spanId", 8)
        if trace_id is None or span_id is None:
            batch.reject("log record with an invalid trace or span id")
            return
        trace_id, span_id = trace_id or None, span_id or None
        batch.logs.append((
            time_ns, resource.key, resource.service, severity, _string(record, "severityText") or None,
            body, trace_id, span_id, text(event_name), dumps(attributes),
        ))
        error = error_from_log(resource, time_ns, severity, body, trace_id, span_id, attributes)
        if error:
            batch.errors.append(error)

    batch.read(groups, _resource, read)


_SEVERITIES = {f"SEVERITY_NUMBER_{name}{n if n > 1 else ''}": 4 * level + n
               for level, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
               for n in (1, 2, 3, 4)}
_SEVERITIES["SEVERITY_NUMBER_UNSPECIFIED"] = 0


# -- metrics -----------------------------------------------------------------------------

def _read_metrics(groups, batch):
    def read(metric, resource, scope):
        metric = _object(metric, "metric")
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
        points = _list(data, "dataPoints")
        for index, point in enumerate(points):
            point = _object(point, "dataPoint")
            try:
                batch.spend(ITEM_COST if index else 0)  # the metric paid for its first point
                attributes = dumps(_attributes(_list(point, "attributes"), batch))
            except OverBudget:
                batch.reject(OVER_BUDGET_REASON, len(points) - index)
                return
            batch.metrics.append((
                _time(point, "timeUnixNano"), resource.key, resource.service, resource.instance, name, unit,
                stored_kind, int(monotonic), temporality, attributes, *_point_values(stored_kind, point),
            ))

    batch.read(groups, _resource, read)


def _point_values(kind, point):
    """``(value, count, sum, buckets)`` of a data point; a distribution's value is its mean."""
    if kind in ("gauge", "sum"):
        return (_int(point, "asInt") if "asInt" in point else finite_or_none(_number(point, "asDouble"))), \
            None, None, None
    count, total = min(_uint64(point, "count"), INT64_MAX), finite_or_none(_number(point, "sum"))
    buckets = None
    if kind == "histogram":
        counts = [_uint64({"bucketCounts": c}, "bucketCounts") for c in _list(point, "bucketCounts")]
        bounds = [finite_or_none(_number({"explicitBounds": b}, "explicitBounds"))
                  for b in _list(point, "explicitBounds")]
        buckets = dumps({"bounds": bounds, "counts": counts})
    mean = total / count if count and total is not None else None
    return finite_or_none(mean), count, total, buckets


_READERS = {"traces": _read_traces, "logs": _read_logs, "metrics": _read_metrics}
