"""OTLP JSON encoding (the protobuf JSON mapping: hex ids, int64 as strings, enums as ints).

Runs on the reporter thread only; the app's threads never pay for it.
"""
import base64

SCOPE = {"name": "spyglass"}
MAX_STRING = 16 * 1024


def any_value(value):
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"stringValue": str(value)}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value[:MAX_STRING]}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value[:MAX_STRING])).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attributes(value)}}
    if value is None:
        return {}
    try:
        text = str(value)
    except Exception:
        text = "<unprintable>"
    return {"stringValue": text[:MAX_STRING]}


def attributes(mapping):
    return [{"key": str(key), "value": any_value(value)} for key, value in mapping.items()]


def _span(span):
    local = span.local
    encoded = {
        "traceId": f"{local.trace_id:032x}",
        "spanId": f"{span.span_id:016x}",
        "name": str(span.name),
        "kind": span.kind,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": attributes(span.attributes),
        "flags": _span_flags(span),
    }
    if span.parent_id:
        encoded["parentSpanId"] = f"{span.parent_id:016x}"
    if local.tracestate:
        encoded["traceState"] = ",".join(f"{k}={v}" for k, v in local.tracestate)
    if span.events:
        encoded["events"] = [
            {"timeUnixNano": str(when), "name": name, "attributes": attributes(attrs)}
            for when, name, attrs in span.events
        ]
    if span.status:
        encoded["status"] = {"code": span.status, "message": span.status_message}
    return encoded


def _span_flags(span):
    # W3C trace flags in bits 0-7; bit 8 says bit 9 is known; bit 9: the parent is remote.
    remote_parent = span.local_root and bool(span.parent_id)
    return 0x100 | (0x200 if remote_parent else 0) | (1 if span.local.sampled else 0)


def encode_traces(resource, traces):
    """``traces``: lists of finished spans, one list per local trace."""
    spans = [_span(span) for trace in traces for span in trace]
    return {"resourceSpans": [{
        "resource": {"attributes": attributes(resource)},
        "scopeSpans": [{"scope": SCOPE, "spans": spans}],
    }]}


def encode_logs(resource, records):
    """``records``: LogRecord tuples (see ``log_record``)."""
    return {"resourceLogs": [{
        "resource": {"attributes": attributes(resource)},
        "scopeLogs": [{"scope": SCOPE, "logRecords": list(records)}],
    }]}


def log_record(time_ns, severity_number, severity_text, body, attrs, trace_id=0, span_id=0):
    """One OTLP LogRecord, already encoded (the caller's thread does this, it is cheap)."""
    record = {
        "timeUnixNano": str(time_ns),
        "observedTimeUnixNano": str(time_ns),
        "severityNumber": severity_number,
        "severityText": severity_text,
        "body": any_value(body),
        "attributes": attributes(attrs),
    }
    if trace_id:
        record["traceId"] = f"{trace_id:032x}"
        record["spanId"] = f"{span_id:016x}"
        record["flags"] = 1
    return record


def encode_metrics(resource, metrics):
    """``metrics``: OTLP Metric dicts (see ``sum_metric``, ``gauge_metric``)."""
    return {"resourceMetrics": [{
        "resource": {"attributes": attributes(resource)},
        "scopeMetrics": [{"scope": SCOPE, "metrics": list(metrics)}],
    }]}


def number_point(value, time_ns, start_ns=0, attrs=None):
    point = {"timeUnixNano": str(time_ns), "attributes": attributes(attrs or {})}
    if start_ns:
        point["startTimeUnixNano"] = str(start_ns)
    if isinstance(value, int) and not isinstance(value, bool):
        point["asInt"] = str(value)
    else:
        point["asDouble"] = float(value)
    return point


AGGREGATION_TEMPORALITY_DELTA = 1
AGGREGATION_TEMPORALITY_CUMULATIVE = 2


def sum_metric(name, unit, description, points, monotonic=True,
               temporality=AGGREGATION_TEMPORALITY_CUMULATIVE):
    return {"name": name, "unit": unit, "description": description, "sum": {
        "dataPoints": points, "aggregationTemporality": temporality, "isMonotonic": monotonic}}


def gauge_metric(name, unit, description, points):
    return {"name": name, "unit": unit, "description": description,
            "gauge": {"dataPoints": points}}


def histogram_point(count, total, bucket_counts, boundaries, time_ns, start_ns=0, attrs=None,
                    minimum=None, maximum=None):
    """One explicit-bucket HistogramDataPoint; ``bucket_counts`` has one more entry than
    ``boundaries`` (the last bucket is everything above the last boundary)."""
    point = {"timeUnixNano": str(time_ns), "attributes": attributes(attrs or {}),
             "count": str(count), "sum": float(total),
             "bucketCounts": [str(n) for n in bucket_counts],
             "explicitBounds": [float(b) for b in boundaries]}
    if start_ns:
        point["startTimeUnixNano"] = str(start_ns)
    if count:
        point["min"] = float(minimum)
        point["max"] = float(maximum)
    return point


def histogram_metric(name, unit, description, points,
                     temporality=AGGREGATION_TEMPORALITY_CUMULATIVE):
    return {"name": name, "unit": unit, "description": description, "histogram": {
        "dataPoints": points, "aggregationTemporality": temporality}}


def dumps(payload) -> bytes:
    import json

    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8", "replace")
