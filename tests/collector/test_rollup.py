"""The per-minute rollup of requests (collector/rollup.py), once per backend: a real collector
receives requests of the last half hour, each with a call, through OTLP, rolls them up in
its maintenance thread, and its summaries (services, routes, a service's page, series,
release comparison, slow calls) then equal what the requests sent make: counts exact, the
percentiles of services, routes, a service's summary and slow calls exact, those of series,
comparisons and slow calls' sparklines within a duration bucket. Requests that arrive after
their minute was rolled up count at once, and are rolled up again as soon as no more come."""
import random
import sqlite3
import time

import pytest

from spyglass.collector.otlp_json import decode
from spyglass.collector.rollup import BUCKET_RATIO, LAG_NS, MINUTE_NS, floor_minute
from spyglass.collector.store import open_store

from . import payloads
from .conftest import RunningCollector

NS = 1_000_000_000
ROUTES = (("GET", "/products/{id}", 20.0), ("POST", "/checkout", 120.0), ("GET", "/health", 1.0))
#: Each request's call, how it is listed, and from how long it is marked slow (``spyglass.slow``).
CALL, CALL_LABEL, SLOW_CALL_NS = "SELECT * FROM items WHERE id = 7", "SELECT * FROM items WHERE id = ?", 10_000_000
#: A call starts this long after its request.
CALL_OFFSET_NS = 1_000_000


def _nearest_rank(durations, percent):
    ordered = sorted(durations)
    return ordered[(len(ordered) * percent + 99) // 100 - 1]


def _sent_requests(now_ns, seed=3):
    """``(service, release, method, route, start_ns, duration_ns, status)`` of the requests to
    send: two services, two releases each, over the half hour before ``LAG_NS`` ago."""
    rng = random.Random(seed)
    newest = now_ns - LAG_NS - 2 * MINUTE_NS
    requests = []
    for _ in range(600):
        service = rng.choice(("web", "api"))
        start_ns = newest - rng.randrange(30 * MINUTE_NS)
        release = "1.0" if start_ns < newest - 15 * MINUTE_NS else "2.0"
        method, route, base_ms = rng.choice(ROUTES)
        # Sixteenths of a millisecond: exactly as many nanoseconds once through OTLP's floats.
        sixteenths = max(1, round(base_ms * rng.lognormvariate(0, 0.6) * (1.5 if release == "2.0" else 1) * 16))
        duration_ns = sixteenths * 62_500
        status = 500 if rng.random() < 0.1 else 200
        requests.append((service, release, method, route, start_ns, duration_ns, status))
    return requests


def _call_ns(duration_ns):
    """How long a request's call lasts: a quarter of it (exact in OTLP's floats too)."""
    return duration_ns // 4


def _request_spans(service, method, route, start_ns, duration_ns, status):
    spans = payloads.request_trace(service, route, method=method, status=status, duration_ms=duration_ns / 1e6,
                                   start_ns=start_ns, calls=[(CALL, "sql", _call_ns(duration_ns) / 1e6)])[1]
    if _call_ns(duration_ns) >= SLOW_CALL_NS:
        spans[1]["attributes"] += payloads.attributes({"spyglass.slow": True})
    return spans


def _send(collector, requests):
    by_resource = {}
    for service, release, method, route, start_ns, duration_ns, status in requests:
        spans = _request_spans(service, method, route, start_ns, duration_ns, status)
        by_resource.setdefault((service, release), []).extend(spans)
    for (service, release), spans in by_resource.items():
        status, _ = collector.post_json("traces", payloads.traces(service, spans, pid=int(float(release) * 100),
                                                                  **{"service.version": release}))
        assert status == 200


def _watermark(db):
    """How far the collector at ``db`` has rolled requests up."""
    if "://" in db:
        import psycopg

        with psycopg.connect(db, autocommit=True) as connection:
            return connection.execute("SELECT watermark_ns FROM rollup_state").fetchone()[0]
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT watermark_ns FROM rollup_state").fetchone()[0]


def _rolled_up(collector, now_ns, timeout=60):
    """Wait until the collector has rolled up every minute that ended ``LAG_NS`` ago."""
    deadline = time.monotonic() + timeout
    while _watermark(collector.db) < floor_minute(now_ns - LAG_NS):
        assert time.monotonic() < deadline, "the rollup did not catch up"
        time.sleep(0.2)


def _ms(ns_list, percent):
    return _nearest_rank(ns_list, percent) / 1e6


@pytest.fixture
def rolled_collector(db_url):
    """A collector (on one worker for PostgreSQL, where late spans are seen by the process
    that wrote them) that received ``_sent_requests`` and rolled them up."""
    env = {"SPYGLASS_COLLECTOR_WORKERS": "1"} if "://" in db_url else None
    collector = RunningCollector(db_url, env=env)
    now_ns = time.time_ns()
    requests = _sent_requests(now_ns)
    _send(collector, requests)
    _rolled_up(collector, now_ns)
    yield collector, requests
    collector.stop()


def test_summaries_from_the_rollup_equal_the_requests_sent(rolled_collector):
    collector, requests = rolled_collector
    for service in ("web", "api"):
        durations = [r[5] for r in requests if r[0] == service]
        errors = sum(1 for r in requests if r[0] == service and r[6] >= 500)
        (row,) = [s for s in collector.api("/services", since="1h")["services"] if s["service"] == service]
        assert (row["requests"], row["errors"], row["max_ms"]) == (len(durations), errors, max(durations) / 1e6)
        assert [row[f"p{p}_ms"] for p in (50, 95, 99)] == [_ms(durations, p) for p in (50, 95, 99)]
        page = collector.api(f"/services/{service}", since="1h")
        assert (page["requests"], page["errors"]) == (len(durations), errors)
        assert [page[f"p{p}_ms"] for p in (50, 95, 99)] == [_ms(durations, p) for p in (50, 95, 99)]
        assert sorted((r["name"], r["requests"]) for r in page["routes"]) == sorted(
            (f"{method} {route}", sum(1 for r in requests if r[0] == service and r[3] == route))
            for method, route, _ in ROUTES)
    for row in collector.api("/routes", since="1h")["routes"]:
        durations = [r[5] for r in requests if (r[0], r[2], r[3]) == (row["service"], row["method"], row["route"])]
        assert row["requests"] == len(durations)
        assert row["total_ms"] == pytest.approx(sum(durations) / 1e6)
        assert [row[f"p{p}_ms"] for p in (50, 95, 99)] == [_ms(durations, p) for p in (50, 95, 99)]


def _within_a_bucket(reported_ms, durations_ns, percent):
    exact = _nearest_rank(durations_ns, percent) / 1e6
    return exact <= reported_ms <= exact * BUCKET_RATIO


def test_series_and_comparison_from_the_rollup(rolled_collector):
    collector, requests = rolled_collector
    end_s = int(time.time())
    body = collector.api("/services/web/series", start=str(end_s - 3600), end=str(end_s), step="60")
    series, origin_ns = body["series"], round(body["series"]["t"][0]) * NS
    assert body["step_s"] == 60 and len(series["t"]) == 60 and origin_ns % MINUTE_NS == 0
    for index, count in enumerate(series["requests"]):
        low = origin_ns + index * MINUTE_NS
        durations = [r[5] for r in requests if r[0] == "web" and low <= r[4] < low + MINUTE_NS]
        assert count == len(durations)
        assert series["errors"][index] == sum(1 for r in requests if r[0] == "web" and low <= r[4] < low + MINUTE_NS
                                              and r[6] >= 500)
        for p in (50, 95, 99):
            assert (series[f"p{p}_ms"][index] is None) if not durations else \
                _within_a_bucket(series[f"p{p}_ms"][index], durations, p)
    comparison = collector.api("/services/web", since="1h")["comparison"]
    assert (comparison["current"], comparison["previous"]) == ("2.0", "1.0")
    for entry in comparison["routes"]:
        for side, release in (("current", "2.0"), ("previous", "1.0")):
            durations = [r[5] for r in requests if (r[0], r[1], r[2]) == ("web", release, entry["method"])
                         and r[3] == entry["route"]]
            assert entry[side]["requests"] == len(durations)
            assert _within_a_bucket(entry[side]["p95_ms"], durations, 95)


def test_slow_calls_from_the_rollup_equal_the_calls_sent(rolled_collector):
    collector, requests = rolled_collector
    for service in ("web", "api"):
        for slow_only in (False, True):
            calls = [(r[4] + CALL_OFFSET_NS, _call_ns(r[5])) for r in requests
                     if r[0] == service and (not slow_only or _call_ns(r[5]) >= SLOW_CALL_NS)]
            durations = [duration for _, duration in calls]
            body = collector.api("/slow-calls", since="1h", service=service, **({} if slow_only else {"all": "1"}))
            (call,) = body["calls"]
            assert (call["label"], call["count"], call["max_ms"]) == (CALL_LABEL, len(durations), max(durations) / 1e6)
            assert call["total_ms"] == pytest.approx(sum(durations) / 1e6)
            assert call["p95_ms"] == _ms(durations, 95)
            origin_ns = round(call["p95_series"][0][0]) * NS
            assert origin_ns % MINUTE_NS == 0 and body["step_ns"] % MINUTE_NS == 0  # whole blocks of the rollup
            for start_s, p95_ms in call["p95_series"]:
                low = round(start_s) * NS
                inside = [duration for start, duration in calls if low <= start < low + body["step_ns"]]
                assert (p95_ms is None) if not inside else _within_a_bucket(p95_ms, inside, 95)


def test_requests_that_arrive_after_their_minute_was_rolled_up_count_at_once(rolled_collector):
    collector, requests = rolled_collector
    late = [("web", "2.0", "GET", "/health", requests[0][4] - 90 * NS + index * NS, 5_000_000 * (index + 1), 200)
            for index in range(7)]
    _send(collector, late)
    durations = [r[5] for r in requests + late if r[0] == "web"]
    (row,) = [s for s in collector.api("/services", since="1h")["services"] if s["service"] == "web"]
    assert row["requests"] == len(durations)
    assert [row[f"p{p}_ms"] for p in (50, 95, 99)] == [_ms(durations, p) for p in (50, 95, 99)]
    assert collector.api("/services/web", since="1h")["requests"] == len(durations)
    (call,) = collector.api("/slow-calls", since="1h", service="web", all="1")["calls"]
    assert call["count"] == len(durations)


def _rolled_counts(store):
    """The requests and the calls the rollup counts."""
    return tuple(int(store._rows(f"SELECT coalesce(sum({column}), 0) AS n FROM {table} WHERE grain_ns = ?",
                                 [MINUTE_NS])[0]["n"])
                 for table, column in (("request_rollup", "requests"), ("call_rollup", "calls")))


def test_late_spans_are_rolled_up_again_as_soon_as_no_more_come(db_url):
    store = open_store(db_url, maintain=False)  # the rounds of its maintenance thread run here, one by one
    try:
        now_ns = time.time_ns()
        minute = floor_minute(now_ns) - 20 * MINUTE_NS

        def send(requests):
            for index in range(requests):
                spans = _request_spans("late", "GET", "/l", minute + index * NS, 8_000_000, 200)
                store.write(decode("traces", payloads.json_bytes(payloads.traces("late", spans))))

        send(1)
        while store.rollup.roll_up(now_ns):  # catching up
            pass
        assert _rolled_counts(store) == (1, 1)
        send(1)
        store.rollup.roll_up(now_ns)  # the first late ones: at once
        assert _rolled_counts(store) == (2, 2)
        send(2)
        store.rollup.roll_up(now_ns)  # more came just now, and more may follow: later
        assert _rolled_counts(store) == (2, 2)
        assert store.services(minute)[0]["requests"] == 4  # meanwhile read from the spans
        store.rollup.roll_up(now_ns)  # none came since the last round
        assert _rolled_counts(store) == (4, 4)
    finally:
        store.close()
