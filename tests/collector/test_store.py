"""Storage: concurrent senders, restarts, migrations and retention."""
import sqlite3
import threading
import time

import pytest

from spyglass.collector.config import default_db_path, load_config
from spyglass.collector.model import Batch
from spyglass.collector.otlp_json import decode
from spyglass.collector.sqlite_schema import MIGRATIONS
from spyglass.collector.sqlite_store import SchemaTooNew, SQLiteStore, percentile

from . import payloads

NS = 1_000_000_000


def test_concurrent_senders_lose_nothing(start_collector):
    collector = start_collector()
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


def test_two_collectors_share_one_database(start_collector, tmp_path):
    db = tmp_path / "shared.db"
    first, second = start_collector(db=db), start_collector(db=db)
    for collector, service in ((first, "one"), (second, "two")):
        _, spans = payloads.request_trace(service, "/s")
        assert collector.post_json("traces", payloads.traces(service, spans))[0] == 200
    for collector in (first, second):
        assert [s["service"] for s in collector.api("/services")["services"]] == ["one", "two"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_restart_keeps_data(start_collector, tmp_path, workers):
    db = tmp_path / "restart.db"
    collector = start_collector("--workers", workers, db=db)
    trace_id, spans = payloads.request_trace("durable", "/d")
    collector.post_json("traces", payloads.traces("durable", spans))
    collector.post_json("logs", payloads.error_logs("durable", payloads.error_event_body()))
    assert collector.stop() == 0

    again = start_collector("--workers", workers, db=db)
    assert len(again.api(f"/traces/{trace_id}")["spans"]) == 1
    assert again.api("/errors")["groups"][0]["count"] == 1
    assert again.api("/health")["schema_version"] == len(MIGRATIONS)


def test_schema_is_versioned_and_a_newer_one_is_refused(tmp_path):
    path = str(tmp_path / "versioned.db")
    store = SQLiteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    journal = store._writer.execute("PRAGMA journal_mode").fetchone()[0]
    store.close()
    assert journal == "wal"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew):
        SQLiteStore(path)


def _batch(service, start_ns, traces=1, calls=0):
    spans = []
    for _ in range(traces):
        spans += payloads.request_trace(service, "/r", start_ns=start_ns,
                                        calls=[("SELECT * FROM t", "sql", 1.0)] * calls)[1]
    return decode("traces", payloads.json_bytes(payloads.traces(service, spans)))


def _count(store, table):
    return store._writer.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_retention_by_age_deletes_only_what_is_older(tmp_path):
    store = SQLiteStore(str(tmp_path / "age.db"), retention_seconds=3600)
    now = time.time_ns()
    store.write(_batch("old", now - 2 * 3600 * NS))
    store.write(decode("logs", payloads.json_bytes(payloads.error_logs(
        "old", payloads.error_event_body(), time_ns=now - 2 * 3600 * NS))))
    store.write(decode("metrics", payloads.json_bytes(payloads.runtime_metrics(
        "old", start_ns=now - 3 * 3600 * NS))))
    store.write(_batch("new", now - 60 * NS))
    deleted = store.apply_retention(now)
    assert deleted["spans"] == 1 and deleted["logs"] == 1 and deleted["metric_points"] == 13
    assert deleted["error_events"] == 1 and deleted["error_groups"] == 1
    assert [row[0] for row in store._writer.execute("SELECT DISTINCT service FROM spans")] == ["new"]
    assert _count(store, "error_groups") == 0
    store.close()


def test_retention_by_size_deletes_the_oldest_first(tmp_path):
    store = SQLiteStore(str(tmp_path / "size.db"), retention_seconds=30 * 86400, retention_bytes=10 << 30)
    now = time.time_ns()
    for hour in range(20):
        store.write(_batch(f"h{hour:02d}", now - (20 - hour) * 3600 * NS, traces=20, calls=10))
    full = store.used_bytes()
    store.retention_bytes = full // 3
    deleted = store.apply_retention(now)
    assert deleted["spans"] > 0
    assert store.used_bytes() <= full // 3
    kept = [row[0] for row in store._writer.execute("SELECT DISTINCT service FROM spans ORDER BY service")]
    assert kept and kept[-1] == "h19" and "h00" not in kept
    assert kept == [f"h{hour:02d}" for hour in range(20 - len(kept), 20)]  # a contiguous newest stretch
    store.close()


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path):
    store = SQLiteStore(str(tmp_path / "atomic.db"))
    batch = _batch("atomic", time.time_ns(), traces=3)
    batch.spans.append(batch.spans[0][:5])  # a row the table cannot take
    with pytest.raises(sqlite3.Error):
        store.write(batch)
    assert _count(store, "spans") == 0 and _count(store, "resources") == 0
    store.write(Batch())
    store.close()


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50, 95, 99)
    assert percentile([7], 0.99) == 7 and percentile([], 0.5) is None


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
