"""OTLP protobuf messages to a ``Batch``, and the protobuf responses a sender expects.

A body up to ``model.WHOLE_BODY_BYTES`` is parsed in one call, the fastest way. A larger
one is walked item by item (``_split``): parsed whole, a protobuf of tiny attributes takes
ten times its size in memory, so a 16 MB body would cost 180 MB before a single row is made.
"""
import base64

from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceMessage
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from .derive import error_from_log, error_from_span_event, span_row
from .search import add_tags
from . import model
from .model import (
    INT64_MAX, ITEM_COST, MAX_ATTRIBUTES, MAX_ITEM_BYTES, MAX_VALUE_DEPTH, OVER_BUDGET_REASON, SKIPPED, Batch,
    OverBudget, Resource, attribute_double, clamp_time, dumps, finite_or_none, text,
)
from .wire import BadRequest

REQUESTS = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSES = {
    "traces": (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
    "logs": (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
}
_ITEMS = {"traces": Span, "metrics": Metric, "logs": LogRecord}
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def decode(signal, data):
    """A ``Batch`` from the serialized export request of ``signal``."""
    batch = Batch()
    try:
        if len(data) <= model.WHOLE_BODY_BYTES:
            groups = _whole(REQUESTS[signal].FromString(data), signal)
        else:
            groups = _split(memoryview(data), _ITEMS[signal], batch)
        _READERS[signal](groups, batch)
    except DecodeError as exc:
        raise BadRequest(400, f"body is not a valid OTLP protobuf {signal} request: {exc}") from None
    return batch


def success(signal, batch):
    """The serialized export response, with a partial success when something was rejected."""
    response_type, rejected_field = RESPONSES[signal]
    response = response_type()
    if batch.rejected or batch.dropped_values:
        setattr(response.partial_success, rejected_field, batch.rejected)
        response.partial_success.error_message = batch.message
    return response.SerializeToString()


def failure(code, message):
    """A serialized ``google.rpc.Status``, the body OTLP prescribes for a refused request."""
    return status_pb2.Status(code=code, message=message).SerializeToString()


# -- the request's structure -------------------------------------------------------------
# Every export request is the same tree: resource groups (field 1), each with a resource
# (1) and scope groups (2), each with a scope (1) and items (2). The readers take it as
# (resource, [(scope name, items)]) whichever way it was parsed.

def _whole(request, signal):
    groups_field, scopes_field, items_field = _FIELD_NAMES[signal]
    for group in getattr(request, groups_field):
        yield group.resource, ((scope_group.scope.name, getattr(scope_group, items_field))
                               for scope_group in getattr(group, scopes_field))


_FIELD_NAMES = {"traces": ("resource_spans", "scope_spans", "spans"),
                "logs": ("resource_logs", "scope_logs", "log_records"),
                "metrics": ("resource_metrics", "scope_metrics", "metrics")}


def _split(data, item_type, batch):
    """The tree of a large body, each item parsed only when the reader gets to it.

    An item larger than ``MAX_ITEM_BYTES`` comes as ``SKIPPED``, as does every item once the
    request is over its budget of values: they are rejected without being parsed.
    """
    for _, start, end in _fields(data, 0, len(data), 1):
        resource = ResourceMessage.FromString(_joined(data, start, end, 1))
        yield resource, _split_scopes(data, start, end, item_type, batch)


def _split_scopes(data, start, end, item_type, batch):
    for _, scope_start, scope_end in _fields(data, start, end, 2):
        scope = InstrumentationScope.FromString(_joined(data, scope_start, scope_end, 1))
        yield scope.name, _split_items(data, scope_start, scope_end, item_type, batch)


def _split_items(data, start, end, item_type, batch):
    for _, item_start, item_end in _fields(data, start, end, 2):
        if batch.over_budget or item_end - item_start > MAX_ITEM_BYTES:
            yield SKIPPED
        else:
            yield item_type.FromString(data[item_start:item_end])


def _joined(data, start, end, number):
    """The fields ``number`` of a message joined: parsed, that is the message they merge into."""
    return b"".join(data[s:e] for _, s, e in _fields(data, start, end, number))


def _fields(data, start, end, wanted):
    """``(number, start, end)`` of each length-delimited field ``wanted`` in ``data[start:end]``."""
    position = start
    try:
        while position < end:
            key, position = _varint(data, position)
            wire_type = key & 7
            if wire_type == 2:
                length, position = _varint(data, position)
                field_end = position + length
                if field_end > end:
                    raise DecodeError("a field runs past the end of its message")
                if key >> 3 == wanted:
                    yield wanted, position, field_end
                position = field_end
            elif wire_type == 0:
                _, position = _varint(data, position)
            elif wire_type == 1 or wire_type == 5:
                position += 8 if wire_type == 1 else 4
            else:
                raise DecodeError(f"unexpected wire type {wire_type}")
        if position > end:
            raise DecodeError("a field runs past the end of its message")
    except IndexError:
        raise DecodeError("truncated message") from None


def _varint(data, position):
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise DecodeError("a varint is too long")


# -- values ------------------------------------------------------------------------------

def _value(any_value, batch, depth=0):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if depth >= MAX_VALUE_DEPTH and kind in ("array_value", "kvlist_value"):
        raise BadRequest(400, f"values nested deeper than {MAX_VALUE_DEPTH} levels")
    if kind == "array_value":
        return [_value(item, batch, depth + 1) for item in batch.keep(any_value.array_value.values)]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values, batch, depth + 1)
    if kind == "double_value":
        return attribute_double(any_value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind)


def _attributes(key_values, batch, depth=0):
    attributes = {}
    count = len(key_values)
    if count > MAX_ATTRIBUTES:
        key_values = batch.keep(key_values)
    else:  # batch.keep, inlined: this runs for every span
        batch.values_left -= count
        if batch.values_left < 0:
            raise OverBudget
    for kv in key_values:  # the hot loop of ingest
        value = kv.value
        text = value.string_value  # most attributes are non-empty strings: one C call
        attributes[kv.key] = text if text else _value(value, batch, depth)
    return attributes


def _resource(batch, resource):
    found = Resource.from_attributes(_attributes(resource.attributes, batch))
    return batch.resources.setdefault(found.key, found)


# -- traces ------------------------------------------------------------------------------

def _read_traces(groups, batch):
    append = batch.spans.append

    def read(span, resource, scope):
        trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
        if len(trace_id) != 16 or len(span_id) != 8 or len(parent_id) not in (0, 8) \
                or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            batch.reject("span with an invalid trace or span id")
            return
        attributes = _attributes(span.attributes, batch)
        events = [{"name": e.name, "time_ns": clamp_time(e.time_unix_nano),
                   "attributes": _attributes(e.attributes, batch)} for e in batch.keep(span.events)] \
            if span.events else None
        links = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                  "attributes": _attributes(link.attributes, batch)}
                 for link in batch.keep(span.links)] if span.links else None
        trace_hex, span_hex = trace_id.hex(), span_id.hex()
        row = span_row(
            resource, scope, trace_hex, span_hex, parent_id.hex(), span.name, span.kind,
            span.start_time_unix_nano, span.end_time_unix_nano, span.status.code,
            span.status.message, attributes, events, links,
        )
        append(row)
        add_tags(batch, trace_hex, attributes)
        if resource.sdk != "spyglass" and events:  # spyglass sends full error events as logs
            for event in events:
                if event["name"] == "exception":
                    batch.errors.append(error_from_span_event(
                        resource, trace_hex, span_hex, attributes,
                        event["time_ns"] or span.end_time_unix_nano, event["attributes"]))

    batch.read(groups, _resource, read)


# -- logs --------------------------------------------------------------------------------

def _read_logs(groups, batch):
    def read(record, resource, scope):
        attributes = _attributes(record.attributes, batch)
        event_name = record.event_name or attributes.get("event.name")
        if event_name and "event.name" not in attributes:
            attributes["event.name"] = event_name
        body = _value(record.body, batch)
        body = body if isinstance(body, str) or body is None else dumps(body)
        time_ns = clamp_time(record.time_unix_nano or record.observed_time_unix_nano)
        trace_id = record.trace_id.hex() or None
        span_id = record.span_id.hex() or None
        batch.logs.append((
            time_ns, resource.key, resource.service, record.severity_number,
            record.severity_text or None, body, trace_id, span_id, text(event_name), dumps(attributes),
        ))
        error = error_from_log(resource, time_ns, record.severity_number, body, trace_id, span_id, attributes)
        if error:
            batch.errors.append(error)

    batch.read(groups, _resource, read)


# -- metrics -----------------------------------------------------------------------------

def _read_metrics(groups, batch):
    def read(metric, resource, scope):
        kind = metric.WhichOneof("data")
        if kind is None:
            batch.reject(f"metric {metric.name!r} has no data")
            return
        data = getattr(metric, kind)
        monotonic = int(getattr(data, "is_monotonic", False))
        temporality = getattr(data, "aggregation_temporality", 0)
        points = data.data_points
        for index, point in enumerate(points):
            try:
                batch.spend(ITEM_COST if index else 0)  # the metric paid for its first point
                attributes = dumps(_attributes(point.attributes, batch))
            except OverBudget:
                batch.reject(OVER_BUDGET_REASON, len(points) - index)
                return
            batch.metrics.append((
                clamp_time(point.time_unix_nano), resource.key, resource.service, resource.instance,
                metric.name, metric.unit, kind, monotonic, temporality, attributes, *_point_values(kind, point),
            ))

    batch.read(groups, _resource, read)


def _point_values(kind, point):
    """``(value, count, sum, buckets)`` of a data point; a distribution's value is its mean."""
    if kind in ("gauge", "sum"):
        value = finite_or_none(point.as_double) if point.WhichOneof("value") == "as_double" else point.as_int
        return value, None, None, None
    count, total = min(point.count, INT64_MAX), finite_or_none(point.sum)
    mean = total / count if count and total is not None else None
    buckets = None
    if kind == "histogram":
        buckets = dumps({"bounds": [finite_or_none(bound) for bound in point.explicit_bounds],
                         "counts": list(point.bucket_counts)})
    return finite_or_none(mean), count, total, buckets


_READERS = {"traces": _read_traces, "logs": _read_logs, "metrics": _read_metrics}
