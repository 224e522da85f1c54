"""A service over time (collector/series.py), once per backend (SQLite, PostgreSQL): requests
in buckets with their percentiles, releases from ``service.version`` and their comparison,
and metrics added up across a service's processes as each metric's meaning requires."""
import time

import pytest

from spyglass.collector.api import Api
from spyglass.collector.otlp_json import decode
from spyglass.collector.series import aggregation_of, choose_step

from . import payloads

NS = 1_000_000_000


def _write(store, signal, document):
    store.write(decode(signal, payloads.json_bytes(document)))


def _requests(store, service, version, route, durations_ms, start_ns, status=200, step_ns=NS):
    spans = []
    for index, duration_ms in enumerate(durations_ms):
        spans += payloads.request_trace(service, route, duration_ms=duration_ms, status=status,
                                        start_ns=start_ns + index * step_ns)[1]
    _write(store, "traces", payloads.traces(service, spans, **{"service.version": version}))


def _error(store, service, version, fingerprint, time_ns):
    document = payloads.error_logs(service, payloads.error_event_body(fingerprint=fingerprint), time_ns=time_ns)
    document["resourceLogs"][0]["resource"] = payloads.resource(service, **{"service.version": version})
    _write(store, "logs", document)


@pytest.fixture
def two_releases(make_store):
    """Release 1.0 ten minutes ago, 2.0 five minutes ago: /a three times slower in 2.0, /b the
    same, and an error group new in 2.0."""
    store = make_store()
    now = time.time_ns()
    first, second = now - 600 * NS, now - 300 * NS
    _requests(store, "rel", "1.0", "/a", [10.0] * 20, first)
    _requests(store, "rel", "1.0", "/b", list(range(1, 21)), first)
    _error(store, "rel", "1.0", "fp-old", first + NS)
    _requests(store, "rel", "2.0", "/a", [30.0] * 20, second)
    _requests(store, "rel", "2.0", "/b", list(range(1, 21)), second)
    _requests(store, "rel", "2.0", "/b", [5.0] * 5, second + 30 * NS, status=500)
    _error(store, "rel", "2.0", "fp-old", second + NS)
    _error(store, "rel", "2.0", "fp-new", second + 2 * NS)
    _requests(store, "other", "9.9", "/a", [1000.0] * 5, second)  # another service: never counted
    return store, now


def test_requests_are_bucketed_with_nearest_rank_percentiles(two_releases):
    store, now = two_releases
    api = Api(store)
    since = now - 900 * NS
    body = api.get("/api/services/rel/series", {"start": str(since / NS), "end": str(now / NS), "step": "60"})
    series = body["series"]
    assert body["step_s"] == 60 and len(series["t"]) == 15
    assert all(len(column) == 15 for column in series.values())
    busy = [i for i, count in enumerate(series["requests"]) if count]
    assert sum(series["requests"]) == 85
    assert series["requests"][busy[0]] + series["requests"][busy[0] + 1] == 40  # 1.0's 40 requests over 40 s
    assert all(series["p50_ms"][i] is None and series["error_rate"][i] is None
               for i in range(15) if not series["requests"][i])
    assert sum(series["errors"]) == 5 and series["rps"][busy[0]] == series["requests"][busy[0]] / 60

    only_a = api.get("/api/services/rel/series", {"start": str(since / NS), "end": str(now / NS),
                                                   "step": "900", "route": "/a", "method": "GET"})["series"]
    assert only_a["requests"] == [40]
    assert (only_a["p50_ms"], only_a["p95_ms"], only_a["p99_ms"]) == ([10.0], [30.0], [30.0])


def test_releases_have_markers_and_the_latest_is_compared_with_the_one_before(two_releases):
    store, _ = two_releases
    body = Api(store).get("/api/services/rel", {"since": "15m"})
    assert (body["requests"], body["errors"], body["instances"]) == (85, 5, 2)
    assert (body["p50_ms"], body["p99_ms"], body["max_ms"]) == (10.0, 30.0, 30.0)
    assert [(r["name"], r["requests"]) for r in body["routes"]] == [("GET /b", 45), ("GET /a", 40)]
    assert [(r["version"], r["requests"], r["marker"]) for r in body["releases"]] == [
        ("1.0", 40, True), ("2.0", 45, True)]
    comparison = body["comparison"]
    assert (comparison["current"], comparison["previous"]) == ("2.0", "1.0")
    by_route = {r["name"]: r for r in comparison["routes"]}
    assert by_route["GET /a"]["slower"] and by_route["GET /a"]["p95_change"] == pytest.approx(2.0)
    assert (by_route["GET /a"]["previous"]["p95_ms"], by_route["GET /a"]["current"]["p95_ms"]) == (10.0, 30.0)
    assert not by_route["GET /b"]["slower"] and by_route["GET /b"]["more_errors"]
    assert by_route["GET /b"]["current"]["error_rate"] == pytest.approx(5 / 25)
    assert comparison["routes"][0]["name"] == "GET /a"  # slower routes first
    assert [(e["message"], e["events"]) for e in comparison["new_errors"]] == [("bad input", 1)]
    (new,) = comparison["new_errors"]
    assert store.error_group(new["id"])["fingerprint"] == "fp-new"
    series = Api(store).get("/api/services/rel/series", {"since": "15m"})
    assert [r["version"] for r in series["releases"] if r["marker"]] == ["1.0", "2.0"]


def test_one_release_or_none_has_nothing_to_compare(make_store):
    store = make_store()
    _requests(store, "single", "", "/x", [5.0] * 3, time.time_ns() - 10 * NS)
    body = Api(store).get("/api/services/single", {"since": "5m"})
    assert [(r["version"], r["marker"]) for r in body["releases"]] == [("", False)]
    assert body["comparison"] == {"current": "", "previous": None, "routes": [], "new_errors": []}
    nothing = Api(store).get("/api/services/nobody", {"since": "5m"})
    assert nothing["releases"] == [] and nothing["comparison"]["current"] is None
    assert sum(Api(store).get("/api/services/nobody/series", {"since": "5m"})["series"]["requests"]) == 0


def _metrics(store, service, pid, memory, utilization, cpu_per_step, start_ns, points=6, step_s=10):
    document = payloads.runtime_metrics(service, points=points, pid=pid, start_ns=start_ns, step_s=step_s)
    for metric in document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]:
        for index, point in enumerate(metric.get("gauge", metric.get("sum", {})).get("dataPoints", [])):
            if metric["name"] == "process.memory.usage":
                point["asInt"] = str(memory)
            elif metric["name"] == "process.cpu.utilization":
                point["asDouble"] = utilization
            elif metric["name"] == "process.cpu.time":
                point["asDouble"] = cpu_per_step * step_s * index
    _write(store, "metrics", document)


def test_metrics_are_summed_or_averaged_across_processes(make_store):
    store = make_store()
    start = (time.time_ns() // (60 * NS) - 2) * 60 * NS
    _metrics(store, "workers", 1, 40_000_000, 0.2, 0.5, start)
    _metrics(store, "workers", 2, 60_000_000, 0.4, 0.25, start + 3 * NS)  # reports 3 s after the first
    api = Api(store)
    window = {"start": str(start / NS - 1), "end": str(start / NS + 120), "step": "10"}
    names = {m["name"]: m for m in api.get("/api/metric-names", {**window, "service": "workers"})["metrics"]}
    assert {m["service"] for m in api.get("/api/metric-names", window)["metrics"]} == {"workers"}
    assert names["process.memory.usage"]["aggregation"] == "sum" and names["process.memory.usage"]["instances"] == 2
    assert names["process.cpu.utilization"]["aggregation"] == "mean"

    memory = api.get("/api/services/workers/metrics/process.memory.usage", window)
    (series,) = memory["series"]
    assert memory["aggregation"] == "sum" and series["instances"] == 2
    assert {value for _, value in series["points"]} == {100_000_000}
    (utilization,) = api.get("/api/services/workers/metrics/process.cpu.utilization", window)["series"]
    assert {round(value, 6) for _, value in utilization["points"]} == {0.3}
    cpu = api.get("/api/services/workers/metrics/process.cpu.time", window)
    assert cpu["as_rate"] and cpu["series"][0]["attributes"] == {"cpu.mode": "user"}
    assert {round(value, 6) for _, value in cpu["series"][0]["points"]} == {0.75}  # 0.5 + 0.25 CPU s/s
    assert api.get("/api/services/workers/metrics/no.such.metric", window)["series"] == []


def test_aggregation_rules_and_steps():
    assert aggregation_of("process.memory.usage") == "sum"
    assert aggregation_of("process.cpu.utilization") == "mean"
    assert aggregation_of("shop.cart.ratio", "1", "gauge") == "mean"
    assert aggregation_of("shop.orders", "{order}", "sum") == "sum"
    assert aggregation_of("shop.latency", "ms", "histogram") == "mean"
    assert choose_step(0, 3600 * NS) == 10 and choose_step(0, 3600 * NS, 60) == 60
    assert choose_step(0, 3600 * NS, 1) == 10  # no more than 360 buckets
    assert choose_step(0, 60 * NS, 10 ** 9) == 60  # one bucket at most the window
