"""Storage, once per backend (SQLite, PostgreSQL): what is written reads back the same,
percentiles and rankings, retention, whole batches, errors as the store's own types, and
a real ``spyglass serve`` on each: concurrent senders, restarts."""
import os
import threading
import time

import pytest

from spyglass.collector.config import default_db_path, load_config
from spyglass.collector.model import Batch
from spyglass.collector.otlp_json import decode
from spyglass.collector.store import (SchemaTooNew, StoreRejected, StoreUnavailable, backend_of, open_store,
                                      sqlite_path)

from . import payloads

NS = 1_000_000_000


def _open(url, **settings):
    return open_store(load_config({"db": url, **settings}, environ={}))


def _batch(service, start_ns, traces=1, calls=0, durations_ms=None):
    spans = []
    for duration_ms in durations_ms or [20.0] * traces:
        spans += payloads.request_trace(service, "/r", start_ns=start_ns, duration_ms=duration_ms,
                                        calls=[("SELECT * FROM t", "sql", 1.0)] * calls)[1]
    return decode("traces", payloads.json_bytes(payloads.traces(service, spans)))


def _count(store, table):
    return store._rows(f"SELECT count(*) AS n FROM {table}")[0]["n"]


def test_percentiles_are_nearest_rank_and_routes_ranked(make_store):
    store = make_store()
    now = time.time_ns()
    store.write(_batch("pct", now - NS, durations_ms=list(range(1, 101))))
    store.write(decode("traces", payloads.json_bytes(payloads.traces("pct", payloads.request_trace(
        "pct", "/slow", duration_ms=500.0, start_ns=now - NS)[1]))))
    (service,) = store.services(now - 60 * NS)
    assert (service["requests"], service["p50_ms"], service["p95_ms"], service["p99_ms"], service["max_ms"]) == \
        (101, 51.0, 96.0, 100.0, 500.0)
    slow, regular = store.routes(now - 60 * NS)
    assert (slow["name"], slow["requests"], slow["p95_ms"]) == ("GET /slow", 1, 500.0)
    assert (regular["name"], regular["p50_ms"], regular["p95_ms"], regular["p99_ms"]) == ("GET /r", 50.0, 95.0, 99.0)
    assert regular["total_ms"] == pytest.approx(5050.0)
    assert store.services(time.time_ns() + NS) == []


def test_slow_calls_are_grouped_and_ranked(make_store):
    store = make_store()
    now = time.time_ns()
    _, spans = payloads.request_trace("calls", "/c", start_ns=now, calls=[("SELECT a FROM t WHERE id = 1", "sql", 1.0),
                                                                        ("SELECT a FROM t WHERE id = 2", "sql", 9.0),
                                                                        ("api.local", "http", 4.0)])
    store.write(decode("traces", payloads.json_bytes(payloads.traces("calls", spans))))
    by_total = store.slow_calls(now - NS, sort="total")
    assert [(c["label"], c["count"], c["total_ms"], c["max_ms"]) for c in by_total] == [
        ("SELECT a FROM t WHERE id = ?", 2, 10.0, 9.0), ("GET api.local", 1, 4.0, 4.0)]
    assert by_total[0]["slowest_span_id"] == spans[2]["spanId"]  # the 9 ms one
    assert [c["label"] for c in store.slow_calls(now - NS, sort="count", limit=1)] == ["SELECT a FROM t WHERE id = ?"]


def test_a_trace_reads_back_with_its_logs_errors_and_metrics(make_store):
    store = make_store()
    trace_id, spans = payloads.request_trace("back", "/b", status=500, user="u-1", calls=[("SELECT 1", "sql", 2.0)])
    store.write(decode("traces", payloads.json_bytes(payloads.traces("back", spans))))
    store.write(decode("logs", payloads.json_bytes(payloads.error_logs("back", payloads.error_event_body(),
                                                                      trace_id=trace_id))))
    store.write(decode("metrics", payloads.json_bytes(payloads.runtime_metrics("back"))))
    trace = store.trace(trace_id.upper())
    assert [s["name"] for s in trace["spans"]] == ["GET /b", "SELECT"]
    assert trace["spans"][0]["is_root"] is True and trace["spans"][0]["is_error"] is True
    assert trace["spans"][0]["attributes"]["enduser.id"] == "u-1"
    assert len(trace["logs"]) == 1 and trace["errors"][0]["type"] == "ValueError"
    (request,) = store.traces(0, service="back", status="5xx")
    assert (request["trace_id"], request["span_count"], request["is_error"]) == (trace_id, 2, True)
    group = store.error_group(store.error_groups(0, service="back")[0]["id"])
    assert group["count"] == 1 and group["latest_event"]["event"]["type"] == "ValueError"
    assert [event["trace_id"] for event in group["events"]] == [trace_id]
    latest = store.latest_metrics(0, service="back")
    assert {m["name"] for m in latest} >= {"process.cpu.time", "process.memory.usage"}
    assert all(type(m["monotonic"]) is bool for m in latest)
    (cpu_user, *_) = [s for s in store.metric_series("process.cpu.time", 0) if s["attributes"] == {"cpu.mode": "user"}]
    assert cpu_user["as_rate"] and len(cpu_user["points"]) == 3 and cpu_user["rate"][0][1] == pytest.approx(0.15)
    assert store.trace("0" * 32) is None and store.error_group(10 ** 9) is None
    assert store.error_group(10 ** 30) is None


def test_a_batch_sent_twice_is_stored_once(make_store):
    store = make_store()
    batch = _batch("twice", time.time_ns(), traces=3, calls=2)
    store.write(batch)
    store.write(batch)
    assert _count(store, "spans") == 9


def test_a_batch_is_stored_whole_or_not_at_all(make_store):
    store = make_store()
    batch = _batch("atomic", time.time_ns(), traces=3)
    batch.spans.append(batch.spans[0][:8] + (1 << 64,) + batch.spans[0][9:])  # a start the table cannot take
    with pytest.raises(StoreRejected, match="int64 range"):
        store.write(batch)
    assert _count(store, "spans") == 0 and _count(store, "resources") == 0
    store.write(Batch())


def test_strings_any_database_can_hold(make_store):
    store = make_store()
    trace_id, spans = payloads.request_trace("nul", "/a\x00b")
    store.write(decode("traces", payloads.json_bytes(payloads.traces("nul", spans))))
    assert store.trace(trace_id)["spans"][0]["route"] in ("/a\x00b", "/a\ufffdb")
    long_name = "long-" + os.urandom(4500).hex()  # past what a PostgreSQL index entry holds, compressed or not
    trace_id, spans = payloads.request_trace(long_name, "/l")
    store.write(decode("traces", payloads.json_bytes(payloads.traces(long_name, spans))))
    (service,) = [s["service"] for s in store.services(0) if s["service"].startswith("long-")]
    assert store.trace(trace_id)["spans"][0]["service"] == service


def test_retention_by_age_deletes_only_what_is_older(make_store):
    store = make_store(retention_seconds=3600)
    now = time.time_ns()
    store.write(_batch("old", now - 2 * 3600 * NS))
    store.write(decode("logs", payloads.json_bytes(payloads.error_logs(
        "old", payloads.error_event_body(), time_ns=now - 2 * 3600 * NS))))
    store.write(decode("metrics", payloads.json_bytes(payloads.runtime_metrics(
        "old", start_ns=now - 3 * 3600 * NS))))
    store.write(_batch("new", now - 60 * NS))
    store.apply_retention(now)
    assert [row["service"] for row in store._rows("SELECT DISTINCT service FROM spans")] == ["new"]
    assert (_count(store, "logs"), _count(store, "metric_points"), _count(store, "error_events"),
            _count(store, "error_groups")) == (0, 0, 0, 0)


def test_retention_by_size_deletes_the_oldest_first(make_store):
    store = make_store(retention_seconds=30 * 86400, retention_bytes=10 << 30)
    now = time.time_ns()
    for hour in range(20):
        store.write(_batch(f"h{hour:02d}", now - (20 - hour) * 3600 * NS, traces=40, calls=10))
    full = store.used_bytes()
    store.retention_bytes = full // 2
    deleted = store.apply_retention(now)
    assert deleted
    assert store.used_bytes() <= full // 2
    kept = [row["service"] for row in store._rows("SELECT DISTINCT service FROM spans ORDER BY service")]
    assert kept and kept[-1] == "h19" and "h00" not in kept
    assert kept == [f"h{hour:02d}" for hour in range(20 - len(kept), 20)]  # a contiguous newest stretch


def test_describe_says_what_and_where_without_secrets(make_store, db_url):
    store = make_store(retention_seconds=7200)
    description = store.describe()
    assert description["backend"] == backend_of(db_url)
    assert description["schema_version"] >= 1 and description["retention_seconds"] == 7200
    assert "password" not in description["location"]


def test_open_store_chooses_the_backend_by_scheme(tmp_path):
    assert backend_of("/var/lib/spyglass.db") == backend_of("sqlite:///var/lib/s.db") == "sqlite"
    assert backend_of("postgresql://u@h/db") == backend_of("postgres://u@h/db") == "postgresql"
    assert sqlite_path("sqlite:///var/lib/s.db") == "/var/lib/s.db" and sqlite_path("rel.db") == "rel.db"
    with pytest.raises(ValueError, match="unknown database"):
        backend_of("mysql://u@h/db")
    store = open_store(f"sqlite://{tmp_path}/by-url.db")
    assert store.describe()["location"] == str(tmp_path / "by-url.db")
    store.close()


def test_a_newer_schema_is_refused(db_url, postgres_or_none):
    _open(db_url).close()
    if backend_of(db_url) == "sqlite":
        import sqlite3

        with sqlite3.connect(db_url) as connection:
            connection.execute("PRAGMA user_version = 999")
    else:
        postgres_or_none.execute(db_url, "UPDATE spyglass_schema SET version = 999")
    with pytest.raises(SchemaTooNew, match="999"):
        _open(db_url)


def test_a_database_that_is_not_there_is_unavailable(tmp_path, postgres_or_none, db_url):
    if backend_of(db_url) == "sqlite":
        missing = f"{tmp_path}/no-such-dir-file/x.db"
        (tmp_path / "no-such-dir-file").write_text("a file, not a directory")
    else:
        missing = postgres_or_none.url_of("spyglass_store_never_created")
    with pytest.raises(StoreUnavailable):
        _open(missing)


@pytest.fixture
def postgres_or_none(request, db_url):
    return request.getfixturevalue("postgres") if backend_of(db_url) == "postgresql" else None


# -- a real collector on each backend -------------------------------------------------------


def test_concurrent_senders_lose_nothing(start_collector, db_url):
    collector = start_collector(db=db_url)
    senders, requests_each, failures = 6, 15, []

    def send(number):
        for _ in range(requests_each):
            _, spans = payloads.request_trace(f"svc-{number % 3}", "/c", calls=[("SELECT 1", "sql", 1.0)] * 3)
            status, _ = collector.post_json("traces", payloads.traces(f"svc-{number % 3}", spans, pid=number))
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    services = collector.api("/services")["services"]
    assert sum(s["requests"] for s in services) == senders * requests_each
    assert {s["service"]: s["instances"] for s in services} == {"svc-0": 2, "svc-1": 2, "svc-2": 2}


def test_two_collectors_share_one_database(start_collector, db_url):
    first, second = start_collector(db=db_url), start_collector(db=db_url)
    for collector, service in ((first, "one"), (second, "two")):
        _, spans = payloads.request_trace(service, "/s")
        assert collector.post_json("traces", payloads.traces(service, spans))[0] == 200
    for collector in (first, second):
        assert [s["service"] for s in collector.api("/services")["services"]] == ["one", "two"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_restart_keeps_data(start_collector, db_url, workers):
    collector = start_collector("--workers", workers, db=db_url)
    trace_id, spans = payloads.request_trace("durable", "/d")
    collector.post_json("traces", payloads.traces("durable", spans))
    collector.post_json("logs", payloads.error_logs("durable", payloads.error_event_body()))
    assert collector.stop() == 0

    again = start_collector("--workers", workers, db=db_url)
    assert len(again.api(f"/traces/{trace_id}")["spans"]) == 1
    assert again.api("/errors")["groups"][0]["count"] == 1
    health = again.api("/health")
    assert health["schema_version"] == health["store"]["schema_version"] >= 1
    assert health["store"]["backend"] == backend_of(db_url)
    status, _, page = again.request("GET", "/")
    footer = page.decode().split('<footer class="store">')[1].split("</footer>")[0]
    assert status == 200 and ("PostgreSQL" if backend_of(db_url) == "postgresql" else "SQLite") in footer
    assert "keeps 7 d" in " ".join(footer.split()) and "1.0 GiB" in footer


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = _open(str(tmp_path / "wal.db"))
    assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_config_defaults_env_and_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == str(tmp_path / "spyglass" / "spyglass.db")
    config = load_config({"port": 9999, "host": None}, environ={
        "SPYGLASS_COLLECTOR_PORT": "1234", "SPYGLASS_COLLECTOR_RETENTION": "2d",
        "SPYGLASS_COLLECTOR_MAX_BODY": "4MB"})
    assert (config.host, config.port, config.retention_seconds, config.max_body_bytes) == \
        ("127.0.0.1", 9999, 2 * 86400, 4 << 20)
    with pytest.raises(ValueError, match="SPYGLASS_COLLECTOR_PORT"):
        load_config(environ={"SPYGLASS_COLLECTOR_PORT": "many"})
