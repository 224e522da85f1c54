"""The size limit holds on disk: under sustained ingest through the real receiver, a SQLite
database and its WAL, or a PostgreSQL database's tables, stay within 1.5x ``--retention-size``."""
import json
import os
import threading
import time

from . import payloads

LIMIT_BYTES = 20 << 20
SPANS_PER_REQUEST = 200
PADDING = "p" * 1500  # bytes per span, so that little CPU moves many megabytes


def _body(number):
    """An export request of new spans (new ids: none replaces an earlier one)."""
    now = time.time_ns()
    spans = []
    for index in range(SPANS_PER_REQUEST):
        start = now + index * 1000
        spans.append({
            "traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "GET /fill", "kind": 2,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
            "attributes": payloads.attributes({"http.route": "/fill", "http.request.method": "GET",
                                               "padding": PADDING, "request.number": number}),
        })
    return json.dumps(payloads.traces("filler", spans)).encode()


def _fill(collector, size_on_disk):
    """Send new spans from two threads until eight times the limit went out (or a minute passed),
    watching ``size_on_disk()``; ``(largest size seen, bytes sent)``."""
    stop = threading.Event()
    largest, sent_bytes, failures = [0], [0], []

    def watch():
        while not stop.is_set():
            largest[0] = max(largest[0], size_on_disk())
            time.sleep(0.01)

    def send(sender):
        number = 0
        while not stop.is_set():
            body = _body(sender * 1_000_000 + number)
            status, _, reply = collector.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
            if status != 200:
                failures.append((status, reply[:200]))
                return
            sent_bytes[0] += len(body)
            number += 1

    threads = [threading.Thread(target=watch)] + [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while sent_bytes[0] < 8 * LIMIT_BYTES and time.monotonic() < deadline and not failures:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sent_bytes[0] >= 4 * LIMIT_BYTES, "not enough sent to fill the limit several times over"
    return largest[0], sent_bytes[0]


def _newest_kept_oldest_deleted(collector, sent_bytes):
    kept = collector.api("/services", since="1h")["services"][0]["requests"]
    assert 0 < kept < sent_bytes // len(PADDING)


def test_database_and_wal_stay_within_one_and_a_half_times_the_limit(start_collector, tmp_path):
    db = tmp_path / "bounded.db"
    collector = start_collector("--retention-size", str(LIMIT_BYTES), db=db)

    def size_on_disk():
        return sum(os.path.getsize(path) for path in (db, f"{db}-wal") if os.path.exists(path))

    largest, sent_bytes = _fill(collector, size_on_disk)
    assert largest <= 1.5 * LIMIT_BYTES, f"{largest / 2**20:.1f} MB on disk for a 20 MB limit"
    _newest_kept_oldest_deleted(collector, sent_bytes)


def test_postgresql_database_stays_within_one_and_a_half_times_the_limit(postgres, start_collector):
    """Whole hours are far more than the limit here: the oldest rows of the current hour's
    partition go, and VACUUM lets the next rows reuse their space."""
    import psycopg

    url = postgres.create()
    collector = start_collector("--retention-size", str(LIMIT_BYTES), db=url)
    watcher = psycopg.connect(url, autocommit=True)
    size_sql = "SELECT pg_database_size(current_database())"
    empty = watcher.execute(size_sql).fetchone()[0]  # PostgreSQL's catalogs and the empty schema

    def size_on_disk():
        return watcher.execute(size_sql).fetchone()[0] - empty

    try:
        largest, sent_bytes = _fill(collector, size_on_disk)
    finally:
        watcher.close()
    assert largest <= 1.5 * LIMIT_BYTES, f"{largest / 2**20:.1f} MB in the database for a 20 MB limit"
    _newest_kept_oldest_deleted(collector, sent_bytes)
