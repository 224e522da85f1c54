"""Trace search and log search, once per backend (SQLite, PostgreSQL): by attribute on any
span of a trace, duration range, time range, trace id prefix; logs by text, level, service,
logger and trace; and the API's answers to bad parameters (400 with a reason)."""
import json
import time
from urllib.parse import urlencode

import pytest

from spyglass.collector import search
from spyglass.collector.api import Api
from spyglass.collector.sqlite_schema import MIGRATIONS
from spyglass.collector.otlp_json import decode

from . import payloads

NS = 1_000_000_000


def _write(store, service, spans):
    store.write(decode("traces", payloads.json_bytes(payloads.traces(service, spans))))


def _ids(traces):
    return {t["trace_id"] for t in traces}


@pytest.fixture
def searched(make_store):
    """A store with three requests: one whose call queried PostgreSQL, one that queried
    MySQL and failed, one with no call; their ids in that order."""
    store = make_store()
    now = time.time_ns()
    postgres_id, spans = payloads.request_trace("shop", "/orders", duration_ms=80.0, start_ns=now - 3 * NS,
                                                calls=[("SELECT * FROM orders", "sql", 20.0)])
    _write(store, "shop", spans)
    mysql_id, spans = payloads.request_trace("shop", "/orders", status=500, duration_ms=300.0, start_ns=now - 2 * NS,
                                             calls=[("SELECT * FROM carts", "sql", 250.0)])
    spans[1]["attributes"] = payloads.attributes({"db.system": "mysql", "db.query.text": "SELECT * FROM carts",
                                                  "net.peer.port": 3306, "db.cached": False, "long": "x" * 300})
    _write(store, "shop", spans)
    plain_id, spans = payloads.request_trace("web", "/health", duration_ms=1.5, start_ns=now - NS)
    _write(store, "web", spans)
    return store, now, (postgres_id, mysql_id, plain_id)


@pytest.mark.parametrize("rare_up_to", [search.RARE_TAG_TRACES, 0])  # a rare tag's ids looked up; a common one probed
def test_attribute_search_matches_the_spans_of_calls_too(searched, monkeypatch, rare_up_to):
    monkeypatch.setattr(search, "RARE_TAG_TRACES", rare_up_to)
    store, now, (postgres_id, mysql_id, plain_id) = searched
    since = now - 60 * NS

    def find(key, value, **filters):
        return _ids(store.traces(since, attribute=(key, value), **filters))

    assert find("db.system", "postgresql") == {postgres_id}  # on the call's span, not the request's
    assert find("db.system", "mysql") == {mysql_id}
    assert find("db.system", "postgres") == set()  # the whole value, not a part of it
    assert find("db.system", "PostgreSQL") == set()  # as stored, case and all
    assert find("http.route", "/health") == {plain_id}  # the request's own attributes
    assert find("net.peer.port", "3306") == {mysql_id}  # a number as it was sent
    assert find("db.cached", "false") == {mysql_id}
    assert find("http.response.status_code", "500") == {mysql_id}
    assert find("http.response.status_code", "50") == set()
    assert find('db.system"', "x") == set()  # quotes are the key's, not JSON's
    assert find("db.system", "mysql", service="web") == set()
    assert find("db.system", "mysql", status="5xx") == {mysql_id}
    assert find("long", "x" * 300) == {mysql_id}  # too long for the index: found in the spans
    assert find("long", "x" * 299) == set()


@pytest.mark.parametrize("max_tags", [search.MAX_TAGS, 2])  # every pair indexed; all but two left out, probed
@pytest.mark.parametrize("rare_up_to", [search.RARE_TAG_TRACES, 0])
def test_the_traces_of_one_request_are_found_by_the_pairs_they_share(make_store, monkeypatch, max_tags, rare_up_to):
    monkeypatch.setattr(search, "MAX_TAGS", max_tags)
    monkeypatch.setattr(search, "RARE_TAG_TRACES", rare_up_to)
    store = make_store()
    now = time.time_ns()
    ids, traces = [], []
    for number in range(6):
        trace_id, spans = payloads.request_trace("shop", "/items", start_ns=now - (6 - number) * NS,
                                                 calls=[(f"SELECT * FROM t{number % 3}", "sql", 1.0)])
        ids.append(trace_id)
        traces.append(spans)
    _write(store, "shop", [span for pair in zip(*traces) for span in pair])  # the traces' spans interleaved
    since = now - 60 * NS

    def find(key, value):
        return _ids(store.traces(since, attribute=(key, value)))

    assert find("db.query.text", "SELECT * FROM t1") == {ids[1], ids[4]}
    assert find("http.route", "/items") == set(ids)
    assert find("db.query.text", "SELECT * FROM t") == set()
    if max_tags == search.MAX_TAGS:  # a pair's traces in one row: a row per pair of the request, not per trace
        (row,) = store._rows("SELECT traces FROM traces_by_tag WHERE tag = 'http.route=/items'")
        assert sorted(row["traces"].split()) == sorted(ids)


def test_duration_time_and_trace_id_ranges(searched):
    store, now, (postgres_id, mysql_id, plain_id) = searched
    since = now - 60 * NS
    assert _ids(store.traces(since, min_duration_ns=int(50e6), max_duration_ns=int(100e6))) == {postgres_id}
    assert _ids(store.traces(since, max_duration_ns=int(2e6))) == {plain_id}
    assert _ids(store.traces(since, min_duration_ns=int(100e6), max_duration_ns=int(50e6))) == set()
    assert _ids(store.traces(now - int(2.5 * NS), now - int(1.5 * NS))) == {mysql_id}
    assert _ids(store.traces(since, trace_id=mysql_id[:6].upper())) == {mysql_id}
    assert _ids(store.traces(since, trace_id=mysql_id)) == {mysql_id}
    assert store.trace_ids(mysql_id[:10]) == [mysql_id]
    assert store.trace_ids(plain_id.upper()) == [plain_id]
    assert store.trace_ids("") == store.trace_ids("0" * 33) == store.trace_ids("xyz") == []
    # Newest first, to the millisecond and below
    assert [t["trace_id"] for t in store.traces(since)] == [plain_id, mysql_id, postgres_id]


def _logs(service, records):
    return {"resourceLogs": [{"resource": payloads.resource(service), "scopeLogs": [
        {"scope": {"name": "spyglass"}, "logRecords": records}]}]}


def _record(message, severity, logger, trace_id="", span_id="", time_ns=None):
    return {"timeUnixNano": str(time_ns or time.time_ns()), "severityNumber": severity,
            "traceId": trace_id, "spanId": span_id, "body": {"stringValue": message},
            "attributes": payloads.attributes({"log.logger": logger})}


def test_logs_by_text_level_service_logger_and_trace(make_store):
    store = make_store()
    now = time.time_ns()
    trace_id, span_id = payloads.new_trace_id(), payloads.new_span_id()
    store.write(decode("logs", payloads.json_bytes(_logs("shop", [
        _record("cart 9 loaded", 9, "app.views", trace_id, span_id, now - 3 * NS),
        _record("Payment provider answered 402 (100% sure_)", 13, "app.payments", trace_id, span_id, now - 2 * NS),
        _record("pool exhausted", 17, "sqlalchemy.pool", time_ns=now - NS),
        _record("application started", 9, "application", time_ns=now - 4 * NS),
    ]))))
    store.write(decode("logs", payloads.json_bytes(_logs("web", [_record("cart 10 loaded", 5, "app", time_ns=now)]))))
    since = now - 60 * NS

    def bodies(**filters):
        return [log["body"] for log in store.logs(since, **filters)]

    assert bodies() == ["cart 10 loaded", "pool exhausted", "Payment provider answered 402 (100% sure_)",
                        "cart 9 loaded", "application started"]
    assert bodies(text="CART") == ["cart 10 loaded", "cart 9 loaded"]
    assert bodies(text="100% sure_") == ["Payment provider answered 402 (100% sure_)"]
    assert bodies(text="0%") == ["Payment provider answered 402 (100% sure_)"]  # % is a character, not a wildcard
    assert bodies(text="d_4") == []
    assert bodies(level=13) == ["pool exhausted", "Payment provider answered 402 (100% sure_)"]
    assert bodies(service="web") == ["cart 10 loaded"]
    assert bodies(logger="app") == ["cart 10 loaded", "Payment provider answered 402 (100% sure_)", "cart 9 loaded"]
    assert bodies(logger="app.views") == ["cart 9 loaded"]
    assert bodies(trace_id=trace_id[:5]) == ["Payment provider answered 402 (100% sure_)", "cart 9 loaded"]
    assert bodies(until_ns=now - int(2.5 * NS)) == ["cart 9 loaded", "application started"]
    assert bodies(limit=1) == ["cart 10 loaded"]
    (record,) = store.logs(since, trace_id=trace_id, level=13)
    assert (record["logger"], record["trace_id"], record["span_id"], record["service"]) == \
        ("app.payments", trace_id, span_id, "shop")


def test_a_search_by_text_reads_a_bounded_number_of_records_and_says_where_it_stopped(make_store, monkeypatch):
    monkeypatch.setattr(search, "LOG_SCAN_BUDGET", 4)
    store = make_store()
    now = time.time_ns() // NS * NS  # whole seconds: `until` in seconds names each exactly
    store.write(decode("logs", payloads.json_bytes(_logs("shop", [
        _record("needle in the oldest", 9, "app", time_ns=now - 10 * NS),
        *(_record(f"hay {index}", 9, "app", time_ns=now - index * NS) for index in range(1, 10))]))))
    api = Api(store)
    first = api.get("/api/logs", {"since": "1m", "q": "needle"})
    assert first["logs"] == [] and first["more_before_ns"] == now - 4 * NS  # the 4th newest: as far as it read
    pages, until = 1, first["more_before_ns"]
    while True:
        page = api.get("/api/logs", {"since": "1m", "q": "needle", "until": str(until / NS)})
        pages += 1
        if page["logs"]:
            break
        until = page["more_before_ns"]
    assert [log["body"] for log in page["logs"]] == ["needle in the oldest"] and pages == 3
    assert api.get("/api/logs", {"since": "1m", "q": "needle", "until": str((now - 8 * NS) / NS)})[
        "more_before_ns"] is None  # 3 records left to read: all of them
    assert api.get("/api/logs", {"since": "1m", "q": "hay", "limit": "2"})["more_before_ns"] is None  # filled


# -- the API over HTTP ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(collector_on_each_backend):
    collector = collector_on_each_backend
    trace_id, spans = payloads.request_trace("served", "/q", calls=[("SELECT 1", "sql", 2.0)])
    assert collector.post_json("traces", payloads.traces("served", spans))[0] == 200
    collector.post_json("logs", payloads.plain_logs("served", "hello from /q", trace_id, spans[0]["spanId"]))
    return collector, trace_id


def _get(collector, path, **params):
    status, _, body = collector.request("GET", f"{path}?{urlencode(params)}")
    return status, json.loads(body)


def test_the_api_searches_traces_and_logs(served):
    collector, trace_id = served
    found = collector.api("/traces", attribute="db.system=postgresql", service="served", min_duration_ms="1",
                          max_duration_ms="1000", since="1h", limit="5")
    assert [t["trace_id"] for t in found["traces"]] == [trace_id]
    assert collector.api("/traces", attribute="db.system=sqlite", service="served")["traces"] == []
    assert [t["trace_id"] for t in collector.api("/traces", trace_id=trace_id[:7])["traces"]] == [trace_id]
    logs = collector.api("/logs", q="HELLO", level="info", service="served", logger="app", trace_id=trace_id)["logs"]
    assert [(log["body"], log["trace_id"]) for log in logs] == [("hello from /q", trace_id)]
    until = collector.api("/logs", service="served", until=str(time.time() - 3600))
    assert until["logs"] == [] and until["until_ns"]


@pytest.mark.parametrize("path, params, reason", [
    ("/api/traces", {"attribute": "db.system"}, "attribute: use key=value"),
    ("/api/traces", {"attribute": "=postgresql"}, "attribute: use key=value"),
    ("/api/traces", {"attribute": "k" * 300 + "=v"}, "attribute: a key of at most 256"),
    ("/api/traces", {"max_duration_ms": "-1"}, "max_duration_ms:"),
    ("/api/traces", {"max_duration_ms": "nan"}, "max_duration_ms:"),
    ("/api/traces", {"min_duration_ms": "ten"}, "min_duration_ms:"),
    ("/api/traces", {"trace_id": "xyz"}, "trace_id: a trace id or its start"),
    ("/api/traces", {"trace_id": "a" * 33}, "trace_id:"),
    ("/api/traces", {"until": "yesterday"}, "end:"),
    ("/api/traces", {"status": "teapot"}, "status:"),
    ("/api/traces", {"since": "forever"}, "since:"),
    ("/api/traces", {"limit": "-3"}, "limit:"),
    ("/api/logs", {"level": "loud"}, "level: use trace, debug"),
    ("/api/logs", {"level": "25"}, "level:"),
    ("/api/logs", {"trace_id": "g00d"}, "trace_id:"),
    ("/api/logs", {"limit": "many"}, "limit:"),
    ("/api/logs", {"until": "99999999999999"}, "end:"),
    ("/api/logs", {"q": "a\0b"}, "NUL"),
])
def test_bad_search_parameters_are_refused_with_a_reason(served, path, params, reason):
    collector, _ = served
    status, body = _get(collector, path, **params)
    assert status == 400 and reason in body["error"], body


def test_the_trace_id_box_opens_a_trace_by_its_id_or_start(served):
    collector, trace_id = served
    for path in (f"/trace?id={trace_id.upper()}", f"/trace?id=+{trace_id[:8]}+", f"/traces/{trace_id[:12]}"):
        status, headers, _ = collector.request("GET", path)
        assert (status, headers["Location"]) == (303, f"/traces/{trace_id}"), path
    assert collector.request("GET", "/trace?id=" + "0" * 31 + "f")[0] == 404
    assert collector.request("GET", "/trace?id=nothex")[0] == 400
    status, _, body = collector.request("GET", f"/traces/{trace_id}")
    assert status == 200 and b"critical path" in body


def test_spans_stored_before_the_upgrade_are_found_after_it(searched, make_store):
    """Schema 4 fills the tag index from the spans a schema 3 store holds, and a later one
    moves it into rows of a pair's traces (the others, run again over what they made,
    change nothing)."""
    store, now, (postgres_id, mysql_id, _) = searched
    if store.describe()["backend"] == "sqlite":
        store._writer.execute("DROP TABLE traces_by_tag")
        store._writer.execute("PRAGMA user_version = 3")
    else:
        with store._connection() as connection:
            connection.execute("DROP TABLE traces_by_tag")
            connection.execute("UPDATE spyglass_schema SET version = 3")
    upgraded = make_store()
    assert upgraded.schema_version == len(MIGRATIONS)
    assert _ids(upgraded.traces(now - 60 * NS, attribute=("db.system", "postgresql"))) == {postgres_id}
    assert _ids(upgraded.traces(now - 60 * NS, attribute=("net.peer.port", "3306"))) == {mysql_id}
    assert _ids(upgraded.traces(now - 60 * NS, attribute=("db.cached", "false"))) == {mysql_id}
