"""Builders of OTLP/JSON export requests, as spyglass's sensor or any sender would send them."""
import os
import time

NS = 1_000_000_000


def any_value(value):
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as OTLP/JSON allows
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def attributes(mapping):
    return [{"key": key, "value": any_value(value)} for key, value in mapping.items()]


def new_trace_id():
    return os.urandom(16).hex()


def new_span_id():
    return os.urandom(8).hex()


def resource(service, sdk="spyglass", pid=4242, **extra):
    return {"attributes": attributes({
        "service.name": service, "host.name": "testhost", "process.pid": pid,
        "telemetry.sdk.name": sdk, "telemetry.sdk.language": "python", **extra})}


def span(trace_id, span_id, name, parent_id="", kind=1, start_ns=None, duration_ms=1.0,
         attrs=None, error=False, events=()):
    start_ns = start_ns or time.time_ns()
    return {
        "traceId": trace_id, "spanId": span_id, "parentSpanId": parent_id, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": start_ns + int(duration_ms * 1e6),
        "attributes": attributes(attrs or {}), "events": list(events),
        "status": {"code": 2, "message": "boom"} if error else {"code": 0},
    }


def traces(service, spans, **resource_args):
    return {"resourceSpans": [{"resource": resource(service, **resource_args),
                               "scopeSpans": [{"scope": {"name": "spyglass"}, "spans": list(spans)}]}]}


def request_trace(service, route, method="GET", status=200, duration_ms=20.0, calls=(), user=None,
                  start_ns=None, trace_id=None):
    """A request span and its calls: ``calls`` are ``(statement_or_name, category, duration_ms)``."""
    trace_id = trace_id or new_trace_id()
    root_id = new_span_id()
    start_ns = start_ns or time.time_ns()
    root_attrs = {"http.request.method": method, "http.route": route, "http.response.status_code": status,
                  "url.path": route.replace("{id}", "7"), "url.scheme": "http"}
    if user:
        root_attrs["enduser.id"] = user
    spans = [span(trace_id, root_id, f"{method} {route}", kind=2, start_ns=start_ns,
                  duration_ms=duration_ms, attrs=root_attrs, error=status >= 500)]
    offset = 1_000_000
    for text, category, call_ms in calls:
        call_attrs = {"spyglass.category": category}
        if category == "sql":
            call_attrs.update({"db.system": "postgresql", "db.query.text": text,
                               "db.operation.name": text.split()[0]})
            name = text.split()[0]
        else:
            call_attrs.update({"http.request.method": "GET", "server.address": text})
            name = f"GET {text}"
        spans.append(span(trace_id, new_span_id(), name, parent_id=root_id, kind=3,
                          start_ns=start_ns + offset, duration_ms=call_ms, attrs=call_attrs))
        offset += int(call_ms * 1e6)
    return trace_id, spans


def error_event_body(error_type="ValueError", message="bad input", fingerprint="fp-value-error"):
    return {
        "type": error_type, "module": "builtins", "message": message, "fingerprint": fingerprint,
        "handled": False, "level": "error", "timestamp": time.time(),
        "frames": [
            {"filename": "app.py", "abs_path": "/srv/app/app.py", "module": "app", "function": "checkout",
             "lineno": 42, "in_app": True, "pre_context": ["def checkout(cart):", "    total = 0"],
             "context_line": "    total += parse(cart)", "post_context": ["    return total"],
             "vars": {"cart": "'[1, 2]'", "total": "0"}},
            {"filename": "parse.py", "abs_path": "/srv/app/parse.py", "module": "app.parse",
             "function": "parse", "lineno": 7, "in_app": True, "pre_context": [],
             "context_line": "    raise ValueError('bad input')", "post_context": []},
        ],
        "chain": [{"relation": "cause", "type": "KeyError", "module": "builtins", "message": "'price'",
                   "frames": [{"filename": "parse.py", "abs_path": "/srv/app/parse.py", "module": "app.parse",
                               "function": "price", "lineno": 3, "in_app": True,
                               "context_line": "    return item['price']"}]}],
        "request": {"method": "POST", "url": "http://shop/checkout", "headers": {"User-Agent": "curl"}},
        "user": {"id": "user-1"},
        "breadcrumbs": [{"category": "sql", "message": "SELECT * FROM carts WHERE id = ?",
                         "timestamp": time.time()}],
    }


def error_logs(service, body, trace_id="", span_id="", user="user-1", route="/checkout", time_ns=None):
    import json

    record = {
        "timeUnixNano": str(time_ns or time.time_ns()), "severityNumber": 17, "severityText": "ERROR",
        "traceId": trace_id, "spanId": span_id, "body": {"stringValue": json.dumps(body)},
        "attributes": attributes({
            "event.name": "spyglass.error", "exception.type": body["type"],
            "exception.message": body["message"], "spyglass.error.fingerprint": body["fingerprint"],
            "enduser.id": user, "http.route": route}),
    }
    return {"resourceLogs": [{"resource": resource(service), "scopeLogs": [
        {"scope": {"name": "spyglass"}, "logRecords": [record]}]}]}


def plain_logs(service, message, trace_id="", span_id="", severity=9):
    record = {"timeUnixNano": str(time.time_ns()), "severityNumber": severity, "severityText": "INFO",
              "traceId": trace_id, "spanId": span_id, "body": {"stringValue": message},
              "attributes": attributes({"log.logger": "app", "code.function": "checkout"})}
    return {"resourceLogs": [{"resource": resource(service), "scopeLogs": [
        {"scope": {"name": "spyglass"}, "logRecords": [record]}]}]}


def runtime_metrics(service, points=3, pid=4242, start_ns=None, step_s=10):
    """Gauges and a cumulative CPU-time sum over ``points`` intervals."""
    start_ns = start_ns or time.time_ns() - points * step_s * NS
    times = [start_ns + i * step_s * NS for i in range(points)]
    memory = {"name": "process.memory.usage", "unit": "By", "gauge": {"dataPoints": [
        {"timeUnixNano": str(t), "asInt": str(50_000_000 + i * 1_000_000)} for i, t in enumerate(times)]}}
    threads = {"name": "process.thread.count", "unit": "{thread}", "gauge": {"dataPoints": [
        {"timeUnixNano": str(t), "asInt": 4 + i % 2} for i, t in enumerate(times)]}}
    cpu = {"name": "process.cpu.time", "unit": "s", "sum": {
        "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
            {"timeUnixNano": str(t), "asDouble": 1.5 * i, "attributes": attributes({"cpu.mode": "user"})}
            for i, t in enumerate(times)]}}
    utilization = {"name": "process.cpu.utilization", "unit": "1", "gauge": {"dataPoints": [
        {"timeUnixNano": str(t), "asDouble": 0.05 + 0.01 * i} for i, t in enumerate(times)]}}
    duration = {"name": "http.server.request.duration", "unit": "s", "histogram": {
        "aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": str(times[-1]), "count": "4", "sum": 0.2, "bucketCounts": ["1", "3", "0"],
             "explicitBounds": [0.01, 0.1], "attributes": attributes({"http.route": "/users/{id}"})}]}}
    return {"resourceMetrics": [{"resource": resource(service, pid=pid), "scopeMetrics": [
        {"scope": {"name": "spyglass"}, "metrics": [memory, threads, cpu, utilization, duration]}]}]}


def json_bytes(document):
    import json

    return json.dumps(document).encode()


def base64_id(hex_id):
    """A hex trace or span id as proto3's JSON mapping writes bytes: base64."""
    import base64

    return base64.b64encode(bytes.fromhex(hex_id)).decode()
