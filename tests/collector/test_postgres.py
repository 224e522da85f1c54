"""PostgreSQL: hourly partitions, a database that goes away and comes back, and several
``spyglass serve`` processes on one database (real processes, a real server; each test
makes its own database and drops it)."""
import os
import signal
import subprocess
import sys
import threading
import time

import psutil

from spyglass.collector.config import load_config
from spyglass.collector.otlp_json import decode
from spyglass.collector.postgres_schema import MIGRATIONS
from spyglass.collector.postgres_store import HOUR_NS, HOURS_AHEAD
from spyglass.collector.store import open_store

from support.processes import clean_env

from . import payloads
from .conftest import REPO

NS = 1_000_000_000


def _partitions(postgres, url, table):
    return sorted(row[0] for row in postgres.execute(
        url, "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = %s::regclass", (table,)))


def _hour_name(table, ns):
    return f"{table}_{time.strftime('%Y%m%d%H', time.gmtime(ns // NS))}"


def _spans_at(service, start_ns):
    return decode("traces", payloads.json_bytes(payloads.traces(service, payloads.request_trace(
        service, "/p", start_ns=start_ns)[1])))


def test_hourly_partitions_made_ahead_on_demand_and_dropped_whole(postgres):
    url = postgres.create()
    store = open_store(load_config({"db": url, "retention_seconds": 3 * 3600}, environ={}))
    now = time.time_ns()
    ahead = [_hour_name("spans", now + hours * HOUR_NS) for hours in range(-1, HOURS_AHEAD + 1)]
    assert set(ahead) <= set(_partitions(postgres, url, "spans"))

    store.write(_spans_at("recent", now - 150 * 60 * NS))  # 2.5 h ago: within retention, made on demand
    store.write(_spans_at("future", now + 5 * HOUR_NS))  # past the hours made ahead: DEFAULT, for now
    store.write(_spans_at("ancient", now - 48 * HOUR_NS))  # past retention: DEFAULT, deleted next round
    for table in ("spans", "logs", "metric_points"):
        assert _hour_name(table, now - 150 * 60 * NS) in _partitions(postgres, url, table)
    default = "SELECT DISTINCT service FROM spans_default ORDER BY service"
    assert postgres.execute(url, default) == [("ancient",), ("future",)]

    # Four hours later: the hour of "future" gets its partition and its row moves in; the
    # hours before the age limit are dropped whole.
    deleted = store.apply_retention(now + 4 * HOUR_NS)
    assert deleted["partitions"] >= 2 and deleted["spans"] == 1  # "ancient", from DEFAULT
    assert postgres.execute(url, default) == []
    assert _hour_name("spans", now + 5 * HOUR_NS) in _partitions(postgres, url, "spans")
    assert _hour_name("spans", now - 150 * 60 * NS) not in _partitions(postgres, url, "spans")
    assert [s["service"] for s in store.services(now - HOUR_NS)] == ["future"]
    store.close()


def _sender(collector, service, acknowledged, statuses, stop, retry_elsewhere=None):
    """POSTs traces until ``stop``; records the span ids of every batch answered 200, and
    retries a refused or unanswered batch (on ``retry_elsewhere``, if given) as an
    exporter would."""
    def send(target, document):
        try:
            status, _ = target.post_json("traces", document)
        except OSError:
            status = None
        statuses.append(status)
        return status == 200

    while not stop.is_set():
        _, spans = payloads.request_trace(service, "/w", calls=[("SELECT 1", "sql", 1.0)] * 4)
        document = payloads.traces(service, spans)
        target = collector
        while not send(target, document):
            target = retry_elsewhere or target
            time.sleep(0.2)
        acknowledged.extend(span["spanId"] for span in spans)


def _stored_span_ids(postgres, url):
    return {row[0] for row in postgres.execute(url, "SELECT span_id FROM spans")}


def test_a_database_that_goes_away_answers_503_and_resumes_losing_nothing(postgres, start_collector):
    url = postgres.create()
    name = url.rsplit("/", 1)[1]
    collector = start_collector("--workers", "1", db=url)
    acknowledged, statuses, stop = [], [], threading.Event()
    sender = threading.Thread(target=_sender, args=(collector, "away", acknowledged, statuses, stop))
    sender.start()
    try:
        time.sleep(1.0)
        postgres.admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        postgres.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        deadline = time.monotonic() + 30
        while 503 not in statuses and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 503 in statuses
        status, _, body = collector.request("GET", "/api/services")
        assert status == 503 and b"store unavailable" in body
        before = len(acknowledged)
        postgres.admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        while len(acknowledged) < before + 20 and time.monotonic() < deadline + 30:
            time.sleep(0.1)
    finally:
        stop.set()
        sender.join()
    assert len(acknowledged) >= before + 20, "ingest did not resume"
    assert set(statuses) <= {200, 503}
    assert set(acknowledged) <= _stored_span_ids(postgres, url)
    assert collector.api("/services")["services"][0]["service"] == "away"


def test_several_collectors_ingest_at_once_and_each_shows_everything(postgres, start_collector):
    url = postgres.create()
    collectors = [start_collector("--workers", "1", db=url) for _ in range(3)]
    acknowledged, statuses, stop = [], [], threading.Event()
    senders = [threading.Thread(target=_sender, args=(collector, f"svc-{n}-{i}", acknowledged, statuses, stop))
               for n, collector in enumerate(collectors) for i in range(2)]
    for sender in senders:
        sender.start()
    time.sleep(3)
    stop.set()
    for sender in senders:
        sender.join()
    assert set(statuses) == {200}
    expected = {f"svc-{n}-{i}" for n in range(3) for i in range(2)}
    traces_sent = len(acknowledged) // 5
    for collector in collectors:
        services = collector.api("/services")["services"]
        assert {s["service"] for s in services} == expected
        assert sum(s["requests"] for s in services) == traces_sent
    assert set(acknowledged) == _stored_span_ids(postgres, url)


def test_a_collector_killed_mid_ingest_loses_no_acknowledged_span(postgres, start_collector):
    url = postgres.create()
    doomed, survivor = start_collector(db=url), start_collector("--workers", "1", db=url)
    acknowledged, statuses, stop = [], [], threading.Event()
    senders = [threading.Thread(target=_sender, args=(doomed, f"kill-{n}", acknowledged, statuses, stop, survivor))
               for n in range(3)]
    for sender in senders:
        sender.start()
    time.sleep(1.5)
    for process in [*psutil.Process(doomed.process.pid).children(), doomed.process]:  # workers too, mid-batch
        os.kill(process.pid, signal.SIGKILL)
    count = len(acknowledged)
    deadline = time.monotonic() + 20
    while len(acknowledged) < count + 100 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for sender in senders:
        sender.join()
    assert len(acknowledged) >= count + 100, "the senders did not go on with the survivor"
    assert None in statuses  # batches the killed collector never answered, sent again to the survivor
    assert set(acknowledged) <= _stored_span_ids(postgres, url)
    assert {s["service"] for s in survivor.api("/services")["services"]} == {f"kill-{n}" for n in range(3)}


def test_collectors_starting_at_once_migrate_the_schema_once(postgres):
    url = postgres.create()
    starting = [subprocess.Popen([sys.executable, "-m", "spyglass.cli", "serve", "--port", "0", "--workers", "1",
                                  "--db", url], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    try:
        lines = [process.stdout.readline() for process in starting]
    finally:
        for process in starting:
            process.terminate()
        errors = [process.communicate(timeout=30)[1] for process in starting]
    assert all("listening on" in line for line in lines), (lines, errors)
    assert postgres.execute(url, "SELECT version FROM spyglass_schema") == [(len(MIGRATIONS),)]


def test_otel_exporter_and_spyglass_sensor_into_two_collectors_one_report(postgres, start_collector, tmp_path):
    """The issue's demo: collector A takes the OpenTelemetry SDK's exporter, collector B
    spyglass's sensor; one database, so ``spyglass report`` on A shows both services."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    url = postgres.create()
    a, b = start_collector("--workers", "1", db=url), start_collector("--workers", "1", db=url)

    provider = TracerProvider(resource=Resource.create({"service.name": "otel-billing"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{a.url}/v1/traces")))
    with provider.get_tracer("demo").start_as_current_span("POST /invoices", kind=SpanKind.SERVER,
                                                           attributes={"http.request.method": "POST",
                                                                       "http.route": "/invoices"}):
        pass
    provider.shutdown()

    program = tmp_path / "sensor_app.py"
    program.write_text("import spyglass\n"
                       "with spyglass.tracer().start_active_span('GET /orders', tags={'span.kind': 'server'}):\n"
                       "    pass\n")
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60,
                            env=clean_env(AUTOWRAPT_BOOTSTRAP="spyglass", SPYGLASS_ENDPOINT=b.url,
                                          SPYGLASS_SERVICE_NAME="sensor-shop", SPYGLASS_METRICS_INTERVAL="0"))
    assert result.returncode == 0, result.stderr

    deadline = time.monotonic() + 20
    while len(a.api("/services")["services"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    report = subprocess.run([sys.executable, "-m", "spyglass.cli", "report", "--url", a.url, "--since", "1h"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    services = report.stdout.split("ROUTES BY P95")[0]
    assert "otel-billing" in services and "sensor-shop" in services, report.stdout
