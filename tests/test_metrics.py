"""Metrics: aggregation (in process, against a real Config), and end to end (a real
interpreter under AUTOWRAPT_BOOTSTRAP=runtime, a real receiver)."""
import json
import logging

from support.processes import run_python
from support.otlp_receiver import decode_attributes

from spyglass import config as config_module
from spyglass import metrics

RUNTIME_METRICS = {
    "process.cpu.time", "process.cpu.utilization", "process.memory.usage",
    "process.memory.virtual", "process.open_file_descriptor.count", "process.thread.count",
    "process.context_switches", "process.paging.faults", "process.uptime",
    "cpython.gc.collections", "cpython.gc.collected_objects",
    "cpython.gc.uncollectable_objects", "cpython.gc.pause_time", "cpython.thread.count",
}


def registry(**settings):
    return metrics.Registry(config_module.load(environ={}, **settings))


def by_name(collected):
    return {metric["name"]: metric for metric in collected}


def points(metric):
    data = metric.get("histogram") or metric.get("sum") or metric.get("gauge")
    return [dict(p, attrs=decode_attributes(p["attributes"])) for p in data["dataPoints"]]


def recorded(registry_, calls):
    """Run ``calls`` against the module API with ``registry_`` as the running one."""
    previous, metrics._registry = metrics._registry, registry_
    try:
        calls()
    finally:
        metrics._registry = previous
    return by_name(registry_.collect())


def test_nothing_happens_when_the_sensor_is_not_running():
    assert metrics._registry is None
    metrics.record_request("/", "GET", 200, 0.1)
    metrics.record_db_call("sqlite", "SELECT", 0.1)
    metrics.record_http_client("GET", "example.org", 443, 200, None, 0.1)
    metrics.record_template("jinja2", 0.1)
    metrics.counter("c")
    metrics.gauge("g", 1)
    metrics.histogram("h", 1)


def test_request_and_db_histograms_by_route_method_and_status_class():
    def calls():
        metrics.record_request("/users/<id>", "GET", 200, 0.004)
        metrics.record_request("/users/<id>", "GET", 204, 0.2)
        metrics.record_request("/users/<id>", "GET", 503, 3.0)
        metrics.record_request("", "GET", 404, 0.001)  # no route matched
        metrics.record_db_call("postgresql", "SELECT", 0.02)

    got = recorded(registry(), calls)
    requests = points(got["http.server.request.duration"])
    by_class = {p["attrs"]["http.response.status_class"]: p for p in requests}
    assert by_class["2xx"]["attrs"] == {"http.route": "/users/<id>", "http.request.method": "GET",
                                         "http.response.status_class": "2xx"}
    assert by_class["4xx"]["attrs"] == {"http.request.method": "GET",  # no http.route at all
                                         "http.response.status_class": "4xx"}
    assert by_class["2xx"]["count"] == "2" and abs(by_class["2xx"]["sum"] - 0.204) < 1e-9
    assert by_class["2xx"]["min"] == 0.004 and by_class["2xx"]["max"] == 0.2
    # (…, 0.005] holds 0.004; (0.1, 0.25] holds 0.2; (2.5, 5] holds 3.0
    assert by_class["2xx"]["bucketCounts"][0] == "1" and by_class["2xx"]["bucketCounts"][6] == "1"
    assert by_class["5xx"]["bucketCounts"][11] == "1"
    assert got["http.server.request.duration"]["unit"] == "s"
    assert got["http.server.request.duration"]["histogram"]["aggregationTemporality"] == 1
    db = points(got["db.client.operation.duration"])
    assert db[0]["attrs"] == {"db.system": "postgresql", "db.operation.name": "SELECT"}


def test_delta_resets_each_interval_and_cumulative_keeps_counting():
    delta, cumulative = registry(), registry(metrics_temporality="cumulative")
    for each in (delta, cumulative):
        recorded(each, lambda: metrics.counter("jobs", 2, labels={"queue": "a"}))
    delta_second = recorded(delta, lambda: metrics.counter("jobs", 3, labels={"queue": "a"}))
    cumulative_second = recorded(cumulative, lambda: metrics.counter("jobs", 3, labels={"queue": "a"}))
    assert points(delta_second["jobs"])[0]["asInt"] == "3"
    assert points(cumulative_second["jobs"])[0]["asInt"] == "5"
    assert cumulative_second["jobs"]["sum"]["aggregationTemporality"] == 2
    assert recorded(delta, lambda: None).get("jobs") is None  # nothing new: nothing sent


def test_custom_instruments_labels_units_and_boundaries():
    def calls():
        metrics.counter("orders", labels={"shop": "eu", "kind": "web"})
        metrics.counter("orders", 2, labels={"kind": "web", "shop": "eu"})  # same series
        metrics.gauge("queue.depth", 7, labels={"queue": "mail"})
        metrics.gauge("queue.depth", 4, labels={"queue": "mail"})
        metrics.histogram("payload", 300, unit="By", boundaries=[100, 1000])

    got = recorded(registry(), calls)
    assert [(p["asInt"], p["attrs"]) for p in points(got["orders"])] == [
        ("3", {"kind": "web", "shop": "eu"})]
    assert points(got["queue.depth"])[0]["asInt"] == "4"
    payload = points(got["payload"])[0]
    assert got["payload"]["unit"] == "By"
    assert payload["explicitBounds"] == [100.0, 1000.0] and payload["bucketCounts"] == ["0", "1", "0"]


def test_cardinality_cap_gives_one_overflow_series_and_one_warning(caplog):
    def calls():
        for user in range(10):
            metrics.counter("logins", labels={"user": str(user)})

    with caplog.at_level(logging.WARNING, logger="spyglass"):
        got = recorded(registry(metrics_max_series=3), calls)
        recorded(registry(metrics_max_series=3), calls)
    series = points(got["logins"])
    assert len(series) == 4
    overflow = [p for p in series if p["attrs"] == {"otel.metric.overflow": True}]
    assert overflow and overflow[0]["asInt"] == "7"
    warnings = [r for r in caplog.records if "logins" in r.getMessage()]
    assert len(warnings) == 2  # one per registry (per process), not one per value
    assert "metrics_max_series" in warnings[0].getMessage()


def test_wrong_use_is_ignored_with_one_warning_and_never_raises(caplog):
    def calls():
        metrics.counter("x", -1)
        metrics.counter("x", -2)
        metrics.gauge("x", 3)  # x is a counter
        metrics.histogram("h", "not a number")
        metrics.counter("labels", labels={"unhashable": [1, 2]})

    with caplog.at_level(logging.WARNING, logger="spyglass"):
        got = recorded(registry(), calls)
    assert "x" not in got and "h" not in got
    assert points(got["labels"])[0]["attrs"] == {"unhashable": "[1, 2]"}
    assert len(caplog.records) == 3


def test_pending_values_are_bounded_folded_by_the_app_when_full(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_PENDING", 5)
    got = recorded(registry(), lambda: [metrics.counter("c") for _ in range(8)])
    assert points(got["c"])[0]["asInt"] == "8"  # the first 5 folded by the 6th's call
    assert "spyglass.metrics.dropped" not in got


def test_pending_values_are_dropped_and_counted_while_the_reporter_folds(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_PENDING", 5)
    running = registry()

    def calls():
        with running._lock:  # the reporter thread, folding at that moment
            for _ in range(8):
                metrics.counter("c")
    got = recorded(running, calls)
    assert points(got["c"])[0]["asInt"] == "5"
    assert points(got["spyglass.metrics.dropped"])[0]["asInt"] == "3"


def test_end_to_end_runtime_request_and_custom_metrics_with_process_pid(receiver):
    result = run_python("""
        import os, time
        from spyglass import metrics
        metrics.record_request("/", "GET", 200, 0.01)
        metrics.counter("e2e.count", 5, labels={"k": "v"})
        time.sleep(2.3)
        print(os.getpid())
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
        SPYGLASS_METRICS_INTERVAL="1")
    pid = int(result.stdout.split()[-1])
    received = receiver.metrics()
    names = {metric["name"] for metric in received}
    assert RUNTIME_METRICS <= names
    assert {"http.server.request.duration", "e2e.count"} <= names
    assert {metric["resource"]["process.pid"] for metric in received} == {pid}
    cpu = [m for m in received if m["name"] == "process.cpu.time"][0]
    assert {p["attrs"]["cpu.mode"] for p in points(cpu)} == {"user", "system"}
    gc_points = points([m for m in received if m["name"] == "cpython.gc.collections"][0])
    assert {p["attrs"]["cpython.gc.generation"] for p in gc_points} == {0, 1, 2}
    assert receiver.schema_errors == []


def test_the_last_interval_is_exported_at_exit(receiver):
    run_python("""
        from spyglass import metrics
        metrics.record_db_call("sqlite", "INSERT", 0.002)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    names = [metric["name"] for metric in receiver.metrics()]
    assert names == ["db.client.operation.duration"]  # no runtime metrics at exit


def test_a_forked_child_reports_its_own_values_only(receiver):
    result = run_python("""
        import os, time
        from spyglass import metrics
        metrics.counter("forked", 1)
        pid = os.fork()
        metrics.counter("forked", 10 if pid == 0 else 100)
        if pid == 0:
            raise SystemExit(0)  # a normal exit: the child's last interval goes out
        os.waitpid(pid, 0)
        print(os.getpid())
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    parent = int(result.stdout.split()[-1])
    totals = {}
    for metric in receiver.metrics():
        if metric["name"] == "forked":
            pid = metric["resource"]["process.pid"]
            totals[pid] = totals.get(pid, 0) + sum(int(p["asInt"]) for p in points(metric))
    assert totals.pop(parent) == 101
    assert list(totals.values()) == [10]


def test_startup_imports_nothing_heavy():
    result = run_python("""
        import sys, json
        print(json.dumps(sorted(m for m in ("psutil", "platform", "spyglass.metrics.snapshot")
                                if m in sys.modules)))
    """, AUTOWRAPT_BOOTSTRAP="runtime")
    assert json.loads(result.stdout) == []


def test_http_client_and_template_histograms():
    def calls():
        metrics.record_http_client("GET", "api.example", 443, 200, None, 0.05)
        metrics.record_http_client("GET", "api.example", 443, 201, None, 0.07)
        metrics.record_http_client("POST", "api.example", 443, 503, None, 1.0)
        metrics.record_http_client("GET", "down.example", None, None, "ConnectionRefusedError", 0.01)
        metrics.record_template("jinja2", 0.0002)

    found = recorded(registry(runtime_metrics=False), calls)
    client = found["http.client.request.duration"]
    assert client["unit"] == "s"
    series = {tuple(sorted(p["attrs"].items())): p["count"] for p in points(client)}
    assert series == {
        (("http.request.method", "GET"), ("http.response.status_class", "2xx"),
         ("server.address", "api.example"), ("server.port", 443)): "2",
        (("http.request.method", "POST"), ("http.response.status_class", "5xx"),
         ("server.address", "api.example"), ("server.port", 443)): "1",
        (("error.type", "ConnectionRefusedError"), ("http.request.method", "GET"),
         ("server.address", "down.example")): "1",
    }
    template, = points(found["spyglass.template.render.duration"])
    assert template["attrs"] == {"spyglass.template.engine": "jinja2"} and template["count"] == "1"
