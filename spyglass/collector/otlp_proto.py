"""OTLP protobuf messages to a ``Batch``, and the protobuf responses a sender expects."""
import base64

from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from .derive import error_from_log, error_from_span_event, span_row
from .model import MAX_VALUE_DEPTH, Batch, Resource, dumps
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
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def decode(signal, data):
    """A ``Batch`` from the serialized export request of ``signal``."""
    try:
        request = REQUESTS[signal].FromString(data)
    except DecodeError as exc:
        raise BadRequest(400, f"body is not a valid OTLP protobuf {signal} request: {exc}") from None
    batch = Batch()
    _READERS[signal](request, batch)
    return batch


def success(signal, batch):
    """The serialized export response, with a partial success when something was rejected."""
    response_type, rejected_field = RESPONSES[signal]
    response = response_type()
    if batch.rejected:
        setattr(response.partial_success, rejected_field, batch.rejected)
        response.partial_success.error_message = batch.rejected_reason
    return response.SerializeToString()


def failure(code, message):
    """A serialized ``google.rpc.Status``, the body OTLP prescribes for a refused request."""
    return status_pb2.Status(code=code, message=message).SerializeToString()


# -- values ------------------------------------------------------------------------------

def _value(any_value, depth=0):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if depth >= MAX_VALUE_DEPTH and kind in ("array_value", "kvlist_value"):
        raise BadRequest(400, f"values nested deeper than {MAX_VALUE_DEPTH} levels")
    if kind == "array_value":
        return [_value(item, depth + 1) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(any_value.kvlist_value.values, depth + 1)
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode()
    return getattr(any_value, kind)


def _attributes(key_values, depth=0):
    attributes = {}
    for kv in key_values:  # the hot loop of ingest
        value = kv.value
        text = value.string_value  # most attributes are non-empty strings: one C call
        attributes[kv.key] = text if text else _value(value, depth)
    return attributes


def _resource(batch, resource):
    found = Resource.from_attributes(_attributes(resource.attributes))
    return batch.resources.setdefault(found.key, found)


# -- traces ------------------------------------------------------------------------------

def _read_traces(request, batch):
    append = batch.spans.append
    for resource_spans in request.resource_spans:
        resource = _resource(batch, resource_spans.resource)
        errors_from_spans = resource.sdk != "spyglass"  # spyglass sends full error events as logs
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                if len(trace_id) != 16 or len(span_id) != 8 or len(parent_id) not in (0, 8) \
                        or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
                    batch.reject("span with an invalid trace or span id")
                    continue
                attributes = _attributes(span.attributes)
                events = [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _attributes(e.attributes)}
                          for e in span.events] if span.events else None
                links = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                          "attributes": _attributes(link.attributes)} for link in span.links] if span.links else None
                trace_hex, span_hex = trace_id.hex(), span_id.hex()
                append(span_row(
                    resource, scope, trace_hex, span_hex, parent_id.hex(), span.name, span.kind,
                    span.start_time_unix_nano, span.end_time_unix_nano, span.status.code,
                    span.status.message, attributes, events, links,
                ))
                if errors_from_spans and events:
                    for event in events:
                        if event["name"] == "exception":
                            batch.errors.append(error_from_span_event(
                                resource, trace_hex, span_hex, attributes,
                                event["time_ns"] or span.end_time_unix_nano, event["attributes"]))


# -- logs --------------------------------------------------------------------------------

def _read_logs(request, batch):
    for resource_logs in request.resource_logs:
        resource = _resource(batch, resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attributes = _attributes(record.attributes)
                event_name = getattr(record, "event_name", "") or attributes.get("event.name")
                if event_name and "event.name" not in attributes:
                    attributes["event.name"] = event_name
                body = _value(record.body)
                body = body if isinstance(body, str) or body is None else dumps(body)
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                trace_id = record.trace_id.hex() or None
                span_id = record.span_id.hex() or None
                batch.logs.append((
                    time_ns, resource.key, resource.service, record.severity_number,
                    record.severity_text or None, body, trace_id, span_id, event_name or None,
                    dumps(attributes),
                ))
                error = error_from_log(resource, time_ns, record.severity_number, body, trace_id,
                                       span_id, attributes)
                if error:
                    batch.errors.append(error)


# -- metrics -----------------------------------------------------------------------------

def _read_metrics(request, batch):
    for resource_metrics in request.resource_metrics:
        resource = _resource(batch, resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    batch.reject(f"metric {metric.name!r} has no data")
                    continue
                data = getattr(metric, kind)
                monotonic = int(getattr(data, "is_monotonic", False))
                temporality = getattr(data, "aggregation_temporality", 0)
                for point in data.data_points:
                    batch.metrics.append((
                        point.time_unix_nano, resource.key, resource.service, resource.instance,
                        metric.name, metric.unit, kind, monotonic, temporality,
                        dumps(_attributes(point.attributes)), *_point_values(kind, point),
                    ))


def _point_values(kind, point):
    """``(value, count, sum, buckets)`` of a data point; a distribution's value is its mean."""
    if kind in ("gauge", "sum"):
        value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
        return value, None, None, None
    mean = point.sum / point.count if point.count else None
    buckets = None
    if kind == "histogram":
        buckets = dumps({"bounds": list(point.explicit_bounds), "counts": list(point.bucket_counts)})
    return mean, point.count, point.sum, buckets


_READERS = {"traces": _read_traces, "logs": _read_logs, "metrics": _read_metrics}
