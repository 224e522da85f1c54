"""The OTLP data model as the JSON mapping writes it (hex ids, int64 as strings, enums as
ints): attribute values, log records and metrics, as dicts. Imported at startup, so it
imports nothing; the bodies of export requests are written by ``encode``.
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
