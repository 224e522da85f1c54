"""A real ``spyglass serve`` on a free port, and a small OTLP/HTTP client for it."""
import gzip
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest

from support.services import require

REPO = Path(__file__).resolve().parents[2]
#: A PostgreSQL server the tests may create databases on (each test its own, dropped after).
POSTGRES_URL = os.environ.get("SPYGLASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


class RunningCollector:
    """``python -m spyglass.cli serve --port 0`` in a subprocess, until ``stop()``."""

    def __init__(self, db, *args, env=None):
        self.db = str(db)
        environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spyglass.cli", "serve", "--port", "0", "--db", self.db, *args],
            cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"collector did not start: {line}{self.process.stderr.read()}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.host, self.port = urlsplit(self.url).hostname, urlsplit(self.url).port

    def request(self, method, path, body=None, headers=None):
        """``(status, headers, body bytes)`` of one request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post_json(self, signal, document, gzipped=False, headers=None):
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        if gzipped:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        status, _, reply = self.request("POST", f"/v1/{signal}", body, headers)
        return status, json.loads(reply) if reply else None

    def api(self, path, headers=None, **params):
        query = f"?{urlencode(params)}" if params else ""
        status, _, body = self.request("GET", f"/api{path}{query}", headers=headers)
        assert status == 200, (status, body)
        return json.loads(body)

    def stop(self):
        """Stop it (SIGTERM, as a service manager would); its exit status. Idempotent."""
        if self.process.stdout.closed:
            return self.process.returncode
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        return self.process.returncode


@pytest.fixture
def start_collector(tmp_path):
    """Starts collectors (``start_collector(*args, db=..., env=...)``); all stopped at teardown."""
    running = []

    def start(*args, db=None, env=None):
        collector = RunningCollector(db or tmp_path / "spyglass.db", *args, env=env)
        running.append(collector)
        return collector

    yield start
    for collector in running:
        collector.stop()


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    """One collector shared by a test module; tests keep apart by service name."""
    running = RunningCollector(tmp_path_factory.mktemp("collector") / "spyglass.db")
    yield running
    running.stop()


@pytest.fixture
def otel_tracer(collector):
    """An OpenTelemetry SDK tracer exporting protobuf to ``collector`` with the official exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    def make(service, compression=None):
        from opentelemetry.exporter.otlp.proto.http import Compression

        exporter = OTLPSpanExporter(
            endpoint=f"{collector.url}/v1/traces",
            compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        providers.append(provider)
        return provider

    providers = []
    yield make
    for provider in providers:
        provider.shutdown()


class PostgresServer:
    """Makes throwaway databases on the test server: ``create()`` returns a new one's URL."""

    def __init__(self, admin_url):
        import psycopg

        self.admin_url = admin_url
        self.admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
        self.created = []

    def url_of(self, name):
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def create(self, prefix="spyglass_store"):
        name = f"{prefix}_{os.urandom(4).hex()}"
        self.admin.execute(f"CREATE DATABASE {name}")
        self.created.append(name)
        return self.url_of(name)

    def execute(self, url, sql, parameters=()):
        """Run one statement on the database at ``url``; its rows, if it returns any."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(sql, parameters)
            return cursor.fetchall() if cursor.description else None

    def drop_all(self):
        for name in self.created:
            self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.admin.close()


@pytest.fixture
def postgres():
    """A ``PostgresServer`` on ``SPYGLASS_TEST_POSTGRES_URL``; its databases dropped at teardown."""
    try:
        server = PostgresServer(POSTGRES_URL)
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the server is not usable
        require(False, f"PostgreSQL not reachable at {POSTGRES_URL} (set SPYGLASS_TEST_POSTGRES_URL): {exc}")
    yield server
    server.drop_all()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """What ``--db`` names, once per backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "spyglass.db")
    return request.getfixturevalue("postgres").create()


@pytest.fixture
def make_store(db_url):
    """Opens stores on this test's database (``make_store(retention_seconds=…)``); closed after."""
    from spyglass.collector.config import load_config
    from spyglass.collector.store import open_store

    opened = []

    def make(**settings):
        store = open_store(load_config({"db": db_url, **settings}, environ={}))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="module", params=BACKENDS)
def collector_on_each_backend(request, tmp_path_factory):
    """One collector shared by a test module, once per backend: a SQLite file, then a fresh
    PostgreSQL database (dropped after)."""
    server = None
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp("collector") / "spyglass.db"
    else:
        try:
            server = PostgresServer(POSTGRES_URL)
        except Exception as exc:  # noqa: BLE001 - whatever the reason, the server is not usable
            require(False, f"PostgreSQL not reachable at {POSTGRES_URL} (set SPYGLASS_TEST_POSTGRES_URL): {exc}")
        db = server.create("spyglass_module")
    running = RunningCollector(db)
    yield running
    running.stop()
    if server:
        server.drop_all()
