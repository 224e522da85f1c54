"""Ingest throughput of ``spyglass serve``: OTLP spans per second into each of its stores.

Starts a real collector (a subprocess: SQLite in WAL mode in a temporary directory, or
PostgreSQL in a database it creates and drops on ``--postgres``'s server), then
POSTs pre-encoded export requests to it over HTTP/1.1 keep-alive from a few client
threads, as SDK exporters do, and counts spans stored per second of wall time, from the
first request to the last response. Requests carry 512 spans (the OpenTelemetry SDK's
default batch) in traces of one SERVER span and nine CLIENT/INTERNAL spans with the
attributes real instrumentation sets.

    python benchmarks/bench_ingest.py [--requests 120] [--format protobuf|json|both]
                                      [--store sqlite|postgresql|both]

The project's bar is 30,000 spans/s for protobuf on a 2-core machine, for each store;
the exit status is 1 when a figure falls below ``--bar``. PostgreSQL runs on the same
machine and so takes its share of the same two cores. The machine may be shared, so it also prints
the load before each run and the collector's own CPU time per span (from rusage,
start-up subtracted), which other processes cannot inflate.
"""
import argparse
import gzip
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
SPANS_PER_REQUEST = 512
SPANS_PER_TRACE = 10


def _attributes(mapping):
    return [{"key": k, "value": {"intValue": v} if isinstance(v, int) else {"stringValue": v}}
            for k, v in mapping.items()]


def _trace(start_ns, number):
    trace_id, root_id = os.urandom(16).hex(), os.urandom(8).hex()
    spans = [{
        "traceId": trace_id, "spanId": root_id, "name": "GET /users/{id}", "kind": 2,
        "startTimeUnixNano": start_ns, "endTimeUnixNano": start_ns + 25_000_000,
        "attributes": _attributes({"http.request.method": "GET", "http.route": "/users/{id}",
                                   "http.response.status_code": 200, "url.path": f"/users/{number}",
                                   "url.scheme": "http", "server.address": "shop.local",
                                   "client.address": "10.1.2.3", "user_agent.original": "bench/1.0",
                                   "spyglass.agg.sql.count": 8, "spyglass.agg.sql.duration_ms": 12}),
        "status": {"code": 0},
    }]
    for child in range(SPANS_PER_TRACE - 1):
        sql = child % 3 != 2
        attributes = {"spyglass.category": "sql", "db.system": "postgresql", "db.namespace": "shop",
                      "db.operation.name": "SELECT", "db.query.text": f"SELECT * FROM t{child} WHERE id = ?",
                      "server.address": "db.local", "server.port": 5432, "db.response.returned_rows": 1} \
            if sql else {"code.function": "render", "code.namespace": "shop.views"}
        begin = start_ns + (child + 1) * 2_000_000
        spans.append({
            "traceId": trace_id, "spanId": os.urandom(8).hex(), "parentSpanId": root_id,
            "name": "SELECT" if sql else "render", "kind": 3 if sql else 1,
            "startTimeUnixNano": begin, "endTimeUnixNano": begin + 1_500_000,
            "attributes": _attributes(attributes), "status": {"code": 0},
        })
    return spans


def _request_document(start_ns):
    spans = []
    while len(spans) < SPANS_PER_REQUEST:
        spans += _trace(start_ns + len(spans) * 1000, len(spans))
    resource = {"attributes": _attributes({"service.name": "bench", "host.name": "bench-host",
                                           "process.pid": 1234, "telemetry.sdk.name": "spyglass",
                                           "telemetry.sdk.language": "python"})}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [
        {"scope": {"name": "spyglass"}, "spans": spans[:SPANS_PER_REQUEST]}]}]}


def _to_protobuf(document):
    import base64

    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # proto3 JSON: base64 ids
        for key in ("traceId", "spanId", "parentSpanId"):
            span[key] = base64.b64encode(bytes.fromhex(span.get(key, ""))).decode()
    return json_format.ParseDict(document, ExportTraceServiceRequest()).SerializeToString()


def encode_bodies(count, fmt):
    """``count`` distinct request bodies and their headers."""
    start_ns = time.time_ns() - 600 * 1_000_000_000
    bodies = []
    for index in range(count):
        document = _request_document(start_ns + index * 10_000_000)
        if fmt == "protobuf":
            bodies.append(_to_protobuf(document))
        else:  # what spyglass's sensor sends: JSON, gzip
            bodies.append(gzip.compress(json.dumps(document).encode(), compresslevel=1))
    headers = {"Content-Type": "application/x-protobuf"} if fmt == "protobuf" else \
        {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return bodies, headers


class SQLiteDatabase:
    """A database file in a temporary directory."""

    label = "SQLite WAL"

    def __enter__(self):
        self.directory = tempfile.TemporaryDirectory()
        self.url = os.path.join(self.directory.name, "bench.db")
        return self

    def count_spans(self):
        import sqlite3

        with sqlite3.connect(self.url) as connection:
            return connection.execute("SELECT count(*) FROM spans").fetchone()[0]

    def __exit__(self, *exc):
        self.directory.cleanup()


class PostgresDatabase:
    """A database created for the run on ``admin_url``'s server, dropped after it."""

    label = "PostgreSQL"

    def __init__(self, admin_url):
        self.admin_url = admin_url

    def __enter__(self):
        import psycopg

        self.name = f"spyglass_bench_{os.getpid()}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {self.name}")
        self.url = urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{self.name}"))
        return self

    def count_spans(self):
        import psycopg

        with psycopg.connect(self.url) as connection:
            return connection.execute("SELECT count(*) FROM spans").fetchone()[0]

    def __exit__(self, *exc):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def start_collector(db):
    process = subprocess.Popen(
        [sys.executable, "-m", "spyglass.cli", "serve", "--port", "0", "--db", db],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"collector did not start: {line}")
    return process, urlsplit(line.split("listening on ", 1)[1].split()[0])


def send_all(url, bodies, headers, clients):
    """POST every body over ``clients`` keep-alive connections; seconds taken. ``bodies``:
    bodies for /v1/traces, or ``(signal, body)`` pairs, taken one by one (a generator may
    make them as they are sent)."""
    pending = iter(bodies)
    lock = threading.Lock()
    failures = []

    def client():
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                break
            signal, body = item if isinstance(item, tuple) else ("traces", item)
            connection.request("POST", f"/v1/{signal}", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return elapsed


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def idle_cpu(database):
    """CPU seconds a collector spends starting and stopping (imports, workers), to subtract."""
    with database as db:
        before = _children_cpu()
        process, _ = start_collector(db.url)
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        return _children_cpu() - before


def run(fmt, database, requests, clients, baseline_cpu):
    """``(spans/s of wall time, collector CPU µs per span, spans sent, seconds)``.

    The CPU time is the collector's alone: PostgreSQL's server processes are not its children.
    """
    bodies, headers = encode_bodies(requests, fmt)
    with database as db:
        cpu_before = _children_cpu()
        process, url = start_collector(db.url)
        try:
            send_all(url, bodies[:4], headers, 1)  # warm up: imports, caches, first pages
            elapsed = send_all(url, bodies[4:], headers, clients)
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()
        cpu = _children_cpu() - cpu_before - baseline_cpu
        stored = db.count_spans()
    assert stored == len(bodies) * SPANS_PER_REQUEST, (stored, len(bodies) * SPANS_PER_REQUEST)
    sent = (len(bodies) - 4) * SPANS_PER_REQUEST
    return sent / elapsed, cpu / (len(bodies) * SPANS_PER_REQUEST) * 1e6, sent, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=120, help="export requests of 512 spans to send")
    parser.add_argument("--clients", type=int, default=2, help="concurrent sender connections")
    parser.add_argument("--format", choices=("protobuf", "json", "both"), default="both")
    parser.add_argument("--bar", type=float, default=30_000, help="minimum protobuf spans/s (exit 1 below)")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres", default=os.environ.get("SPYGLASS_BENCH_POSTGRES_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server to create the benchmark's database on (default %(default)s)")
    args = parser.parse_args(argv)
    formats = ("protobuf", "json") if args.format == "both" else (args.format,)
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    status = 0
    cores = os.cpu_count() or 1
    for store in stores:
        database = SQLiteDatabase() if store == "sqlite" else PostgresDatabase(args.postgres)
        baseline = idle_cpu(database)
        for fmt in formats:
            load = os.getloadavg()[0]
            rate, cpu_us, sent, elapsed = run(fmt, database, args.requests, args.clients, baseline)
            label = "protobuf" if fmt == "protobuf" else "json+gzip"
            print(f"ingest {label:9s} into {database.label}: {rate:,.0f} spans/s ({sent:,} spans in "
                  f"{elapsed:.2f}s, {args.clients} clients, {SPANS_PER_REQUEST} spans/request; "
                  f"load average {load:.1f} on {cores} cores before the run)")
            print(f"  collector CPU: {cpu_us:.1f} µs/span (CPU-bound ceiling on {cores} idle cores: "
                  f"{1e6 / cpu_us * cores:,.0f} spans/s)")
            if fmt == "protobuf" and rate < args.bar:
                print(f"FAIL: below the bar of {args.bar:,.0f} spans/s")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
