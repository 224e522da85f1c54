"""A collector's worth of realistic telemetry, sent through real OTLP requests."""
import random
import time

from . import payloads

NS = 1_000_000_000
STACK = ('  File "/srv/shop/views.py", line 88, in checkout\n    order = Order.load(order_id)\n'
         '  File "/srv/shop/models.py", line 31, in load\n    row = db.execute(QUERY, (order_id,)).fetchone()')


def _shop_traces(rng, now_ns, count=60):
    spans = []
    routes = [("GET", "/products/{id}", 18), ("GET", "/cart", 35), ("POST", "/checkout", 120), ("GET", "/search", 60)]
    for index in range(count):
        method, route, base = rng.choice(routes)
        start_ns = now_ns - rng.randint(10, 1700) * NS
        slow = rng.random() < 0.1
        status = 500 if route == "/checkout" and rng.random() < 0.2 else (404 if rng.random() < 0.05 else 200)
        calls = [("SELECT p.id, p.name, p.price FROM products p WHERE p.id = 42", "sql", rng.uniform(1, 4))]
        if route == "/checkout":
            calls += [("UPDATE orders SET state = 'paid' WHERE id = 7", "sql", rng.uniform(5, 30)),
                      ("payments.internal", "remote", rng.uniform(40, 90))]
        if route == "/search":
            calls += [("SELECT * FROM products WHERE name LIKE '%shoe%' ORDER BY rank LIMIT 20", "sql",
                       rng.uniform(20, 50) * (4 if slow else 1))]
        duration = base * rng.uniform(0.6, 1.6) * (5 if slow else 1) + sum(c[2] for c in calls)
        _, trace_spans = payloads.request_trace("shop", route, method=method, status=status, duration_ms=duration,
                                                calls=calls, user=f"user-{rng.randint(1, 9)}", start_ns=start_ns)
        for span in trace_spans[1:]:
            duration_ms = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
            if duration_ms > 40:
                span["attributes"] += payloads.attributes({"spyglass.slow": True, "spyglass.stack": STACK})
        trace_spans[0]["attributes"] += payloads.attributes({"spyglass.agg.sql.count": len(calls)})
        spans += trace_spans
    return spans


def fill(collector, otel_tracer=None):
    """Send traces, error events, logs and metrics for two services; the last trace id sent."""
    rng = random.Random(7)
    now_ns = time.time_ns()
    spans = _shop_traces(rng, now_ns)
    for chunk in range(0, len(spans), 100):
        assert collector.post_json("traces", payloads.traces("shop", spans[chunk:chunk + 100]), gzipped=True)[0] == 200
    trace_id, checkout = payloads.request_trace(
        "shop", "/checkout", method="POST", status=500, duration_ms=180, user="user-3",
        calls=[("SELECT * FROM carts WHERE id = 9", "sql", 12.0), ("payments.internal", "remote", 95.0)])
    checkout[2]["attributes"] += payloads.attributes({"spyglass.slow": True, "spyglass.stack": STACK})
    collector.post_json("traces", payloads.traces("shop", checkout))
    root_id = checkout[0]["spanId"]
    collector.post_json("logs", payloads.plain_logs("shop", "cart 9 loaded with 2 items", trace_id, root_id))
    collector.post_json("logs", payloads.plain_logs("shop", "payment provider answered 402", trace_id, root_id,
                                                    severity=13))
    for user in ("user-1", "user-2", "user-3"):
        collector.post_json("logs", payloads.error_logs("shop", payloads.error_event_body(), trace_id, root_id,
                                                        user=user), gzipped=True)
    timeout = payloads.error_event_body("TimeoutError", "payments.internal did not answer in 5s", "fp-timeout")
    collector.post_json("logs", payloads.error_logs("shop", timeout, user="user-4", route="/checkout"))
    for pid in (101, 102):
        collector.post_json("metrics", _runtime_series("shop", pid, rng, now_ns))
    collector.post_json("metrics", _runtime_series("billing", 7, rng, now_ns))
    if otel_tracer:
        _billing(otel_tracer)
    return trace_id


def _runtime_series(service, pid, rng, now_ns, points=40, step_s=15):
    document = payloads.runtime_metrics(service, points=points, pid=pid, start_ns=now_ns - points * step_s * NS,
                                        step_s=step_s)
    for metric in document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]:
        if metric["name"] == "process.cpu.utilization":
            for point in metric["gauge"]["dataPoints"]:
                point["asDouble"] = round(rng.uniform(0.02, 0.35), 3)
        if metric["name"] == "process.cpu.time":
            total = 0.0
            for point in metric["sum"]["dataPoints"]:
                total += rng.uniform(0.3, 3.0)
                point["asDouble"] = total
    return document


def _billing(otel_tracer):
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider = otel_tracer("billing")
    tracer = provider.get_tracer("billing")
    for number in range(8):
        with tracer.start_as_current_span("POST /invoices", kind=SpanKind.SERVER, attributes={
                "http.request.method": "POST", "http.route": "/invoices",
                "http.response.status_code": 500 if number == 3 else 201}) as span:
            with tracer.start_as_current_span("INSERT invoices", kind=SpanKind.CLIENT, attributes={
                    "db.system": "sqlite", "db.query.text": f"INSERT INTO invoices VALUES ({number}, 'x')"}):
                time.sleep(0.002)
            if number == 3:
                try:
                    {}["customer"]
                except KeyError as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR))
    assert provider.force_flush(10_000)
