"""The collector's pages and API routes with real volume: each must answer in under 300 ms
with a store holding a million spans.

Starts a real ``spyglass serve`` (SQLite in a temporary directory; then PostgreSQL, in a
database it creates and drops, when the server is reachable), fills it through its OTLP
receiver with ``--spans`` spans (default 1,000,000) of the last 50 minutes: several
services, each with routes, releases (``service.version``), processes, errors (error events
and 5xx), logs, attributes, calls and runtime metrics. Once its rollup has caught up (it
prints how long that took after the fill: meanwhile the summaries read the spans), times
every GET route of ``/api/openapi.json`` (so that routes added later are covered too), with only its required
parameters and with sample values for all of them, and every page (``PAGES``, and the page
of each API route that has one), and prints ms per route against the bar.

    python benchmarks/bench_ui.py [--spans 1000000] [--store sqlite|postgresql|both]
                                  [--db FILE (reuse a filled SQLite file)] [--bar 300]
                                  [--postgres-url URL (reuse a filled PostgreSQL database)]

The exit status is 1 when a route is over the bar. Times are the median of ``--repeat``
requests, each on a new connection, after one untimed request.
"""
import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from bench_ingest import send_all
from spyglass.collector.rollup import LAG_NS, MINUTE_NS

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("SPYGLASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NS = 1_000_000_000
SPANS_PER_REQUEST = 512
WINDOW_S = 50 * 60
SERVICES = ("shop", "billing", "search", "accounts", "gateway", "mailer")
ROUTES = (("GET", "/products/{id}", 20), ("GET", "/cart", 35), ("POST", "/checkout", 120),
          ("GET", "/search", 60), ("GET", "/users/{id}", 15), ("PUT", "/users/{id}", 40),
          ("GET", "/health", 2), ("DELETE", "/sessions/{id}", 8))
#: Each service's releases, by the share of the window at which each starts.
RELEASES = (("1.0.0", 0.0), ("1.1.0", 0.4), ("1.2.0", 0.8))
PROCESSES = 4
CALLS = (("postgresql", "SELECT * FROM products WHERE id = ?"),
         ("postgresql", "UPDATE orders SET state = ? WHERE id = ?"),
         ("mysql", "SELECT name FROM users WHERE id = ?"), ("redis", "GET session:?"))
#: Pages that no API route names; the pages of API routes are found by trying them.
PAGES = ("/", "/traces", "/traces/{trace_id}", "/slow-calls", "/errors", "/errors/{group_id}", "/metrics",
         "/profile?service={service}", "/services/{service}", "/services/{service}?route=/checkout&method=POST")
#: Sample values of query and path parameters, by name; other names are left out.
SAMPLES = {
    "since": "1h", "service": "shop", "route": "/checkout", "method": "POST", "limit": "100", "status": "5xx",
    "min_duration_ms": "100", "max_duration_ms": "5000", "errors": "1", "sort": "total", "step": "60",
    "q": "payment", "text": "payment", "level": "error", "logger": "app", "attribute": "db.system=postgresql",
    "state": "open", "all": "1", "release": "1.2.0", "user": "user-7", "name": "process.cpu.time",
}


def _attributes(mapping):
    out = []
    for key, value in mapping.items():
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": str(value)}})
    return out


def _resource(service, version, pid):
    return {"attributes": _attributes({"service.name": service, "service.version": version, "host.name": "bench",
                                       "process.pid": pid, "telemetry.sdk.name": "spyglass",
                                       "telemetry.sdk.language": "python"})}


def _release_at(share):
    return [version for version, start in RELEASES if start <= share][-1]


def _trace(rng, service, start_ns, slow_release):
    """A request and its calls; the third release makes /checkout slower."""
    method, route, base_ms = rng.choice(ROUTES)
    trace_id, root_id = rng.randbytes(16).hex(), rng.randbytes(8).hex()
    duration_ms = base_ms * rng.lognormvariate(0, 0.5) * (1.6 if slow_release and route == "/checkout" else 1)
    status = 500 if rng.random() < 0.03 else (404 if rng.random() < 0.03 else 200)
    user = f"user-{rng.randint(1, 500)}"
    spans = [{
        "traceId": trace_id, "spanId": root_id, "name": f"{method} {route}", "kind": 2,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + int(duration_ms * 1e6)),
        "attributes": _attributes({"http.request.method": method, "http.route": route,
                                   "http.response.status_code": status, "url.path": route.replace("{id}", "7"),
                                   "enduser.id": user, "client.address": "10.0.0.1"}),
        "status": {"code": 2, "message": "boom"} if status >= 500 else {"code": 0},
    }]
    offset = 1_000_000
    for _ in range(rng.randint(2, 6)):
        system, statement = rng.choice(CALLS)
        call_ms = rng.uniform(0.2, duration_ms / 6)
        begin = start_ns + offset
        spans.append({
            "traceId": trace_id, "spanId": rng.randbytes(8).hex(), "parentSpanId": root_id,
            "name": statement.split()[0], "kind": 3,
            "startTimeUnixNano": str(begin), "endTimeUnixNano": str(begin + int(call_ms * 1e6)),
            "attributes": _attributes({"spyglass.category": "nosql" if system == "redis" else "sql",
                                       "db.system": system, "db.query.text": statement,
                                       "db.operation.name": statement.split()[0],
                                       **({"spyglass.slow": True} if call_ms > 50 else {})}),
            "status": {"code": 0},
        })
        offset += int(call_ms * 1e6)
    return spans, (trace_id, root_id, route, user) if status >= 500 else None


def _error_record(time_ns, trace_id, span_id, route, user, kind):
    body = {"type": kind, "module": "builtins", "message": f"{kind} in {route}", "fingerprint": f"fp-{kind}-{route}",
            "handled": False, "frames": [{"filename": "app.py", "function": "view", "lineno": 10, "in_app": True}]}
    return {"timeUnixNano": str(time_ns), "severityNumber": 17, "severityText": "ERROR", "traceId": trace_id,
            "spanId": span_id, "body": {"stringValue": json.dumps(body)},
            "attributes": _attributes({"event.name": "spyglass.error", "exception.type": kind,
                                       "exception.message": body["message"], "spyglass.error.fingerprint":
                                       body["fingerprint"], "enduser.id": user, "http.route": route})}


def _log_record(time_ns, trace_id, span_id, rng):
    return {"timeUnixNano": str(time_ns), "severityNumber": rng.choice((9, 9, 9, 13, 17)), "severityText": "INFO",
            "traceId": trace_id, "spanId": span_id,
            "body": {"stringValue": rng.choice(("payment accepted", "cart loaded", "user signed in", "cache miss"))},
            "attributes": _attributes({"log.logger": rng.choice(("app", "app.payments", "sqlalchemy"))})}


def _metrics(service, version, pid, start_ns, end_ns, step_s=10):
    times = range(start_ns, end_ns, step_s * NS)
    gauge = lambda name, unit, value: {"name": name, "unit": unit, "gauge": {"dataPoints": [  # noqa: E731
        {"timeUnixNano": str(t), "asDouble": value(i)} for i, t in enumerate(times)]}}
    metrics = [
        gauge("process.memory.usage", "By", lambda i: 40e6 + pid * 1e5 + (i % 30) * 1e6),
        gauge("process.cpu.utilization", "1", lambda i: 0.05 + (i % 10) / 100),
        gauge("process.thread.count", "{thread}", lambda i: 4 + i % 3),
        {"name": "process.cpu.time", "unit": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                                          "dataPoints": [
            {"timeUnixNano": str(t), "asDouble": 0.4 * i, "attributes": _attributes({"cpu.mode": "user"})}
            for i, t in enumerate(times)]}},
        {"name": "shop.orders", "unit": "{order}", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                                           "dataPoints": [
            {"timeUnixNano": str(t), "asInt": str(3 * i)} for i, t in enumerate(times)]}},
    ]
    return {"resourceMetrics": [{"resource": _resource(service, version, pid),
                                 "scopeMetrics": [{"scope": {"name": "spyglass"}, "metrics": metrics}]}]}


def requests_to_send(total_spans, now_ns, seed=7):
    """``(signal, body bytes)`` of export requests carrying ``total_spans`` spans and their
    errors, logs and metrics, made as they are sent (a million spans do not fit in memory
    as documents)."""
    rng = random.Random(seed)
    start_ns = now_ns - WINDOW_S * NS
    batches = {}  # resource -> [spans], flushed at SPANS_PER_REQUEST
    logs = {}
    sent = 0
    while sent < total_spans:
        share = rng.random()
        service = rng.choice(SERVICES)
        version = _release_at(share)
        key = (service, version, rng.randrange(PROCESSES) + 1000 * (1 + [v for v, _ in RELEASES].index(version)))
        spans, failed = _trace(rng, service, start_ns + int(share * WINDOW_S * NS), version == RELEASES[-1][0])
        batch = batches.setdefault(key, [])
        batch += spans
        sent += len(spans)
        records = logs.setdefault(key, [])
        records.append(_log_record(int(spans[0]["startTimeUnixNano"]) + 1000, spans[0]["traceId"],
                                   spans[0]["spanId"], rng))
        if failed:
            kind = "TimeoutError" if version == RELEASES[-1][0] and failed[2] == "/checkout" else "ValueError"
            records.append(_error_record(int(spans[0]["startTimeUnixNano"]) + 2000, *failed, kind))
        if len(batch) >= SPANS_PER_REQUEST or sent >= total_spans:
            yield "traces", _encode({"resourceSpans": [{"resource": _resource(*key), "scopeSpans": [
                {"scope": {"name": "spyglass"}, "spans": batch}]}]})
            yield "logs", _encode({"resourceLogs": [{"resource": _resource(*key), "scopeLogs": [
                {"scope": {"name": "spyglass"}, "logRecords": records}]}]})
            batches[key], logs[key] = [], []
    for key, batch in batches.items():
        if batch:
            yield "traces", _encode({"resourceSpans": [{"resource": _resource(*key), "scopeSpans": [
                {"scope": {"name": "spyglass"}, "spans": batch}]}]})
    for service in SERVICES:
        for index, (version, begin) in enumerate(RELEASES):
            end = RELEASES[index + 1][1] if index + 1 < len(RELEASES) else 1.0
            for process in range(PROCESSES):
                pid = process + 1000 * (1 + index)
                yield "metrics", _encode(_metrics(service, version, pid, start_ns + int(begin * WINDOW_S * NS),
                                                  start_ns + int(end * WINDOW_S * NS)))


def _encode(document):
    return json.dumps(document, separators=(",", ":")).encode()


class Collector:
    def __init__(self, db):
        self.process = subprocess.Popen([sys.executable, "-m", "spyglass.cli", "serve", "--port", "0", "--db", db,
                                         "--retention", "7d", "--retention-size", "8GB"],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise SystemExit(f"the collector did not start: {line}{self.process.stdout.read()}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.host, self.port = urlsplit(self.url).hostname, urlsplit(self.url).port

    def get(self, path):
        """``(status, seconds, body)`` of a GET on a new connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            return response.status, time.perf_counter() - started, body
        finally:
            connection.close()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def fill(collector, total_spans, threads=3):
    """Send the export requests from a few keep-alive connections, as exporters do; seconds taken."""
    return send_all(urlsplit(collector.url), requests_to_send(total_spans, time.time_ns()),
                    {"Content-Type": "application/json"}, threads)


def wait_for_rollup(collector, timeout_s=600):
    """Seconds until the collector has rolled up every minute that ended ``rollup.LAG_NS``
    ago (and those its spans reached late: a fill sends them in random time order), so that
    the routes are timed as they answer at rest; that state, right after a bulk load, lasts
    this long."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _api(collector, "/health").get("rolled_up_until_ns", 0) >= time.time_ns() - LAG_NS - 2 * MINUTE_NS:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def _api(collector, path, **params):
    status, _, body = collector.get(f"/api{path}?{urlencode(params)}")
    return json.loads(body) if status == 200 else {}


def targets(collector):
    """``[(label, path)]``: every GET route of the OpenAPI document with its required parameters
    only and with sample values for all, then the pages."""
    document = _api(collector, "/openapi.json")
    traces = _api(collector, "/traces", service="shop", status="5xx", limit=1).get("traces") or [{}]
    groups = _api(collector, "/errors", service="shop", limit=1).get("groups") or [{}]
    path_values = {"service": "shop", "trace_id": traces[0].get("trace_id", "0" * 32),
                   "group_id": str(groups[0].get("id", 1)), "name": "process.cpu.time", **SAMPLES}
    path_values["service"] = "shop"
    found = []
    for path, item in sorted(document["paths"].items()):
        if "get" not in item:
            continue
        parameters = item["get"].get("parameters", [])
        concrete = path
        for parameter in parameters:
            if parameter["in"] == "path":
                concrete = concrete.replace("{%s}" % parameter["name"], quote(path_values[parameter["name"]], safe=""))
        required = {p["name"]: SAMPLES[p["name"]] for p in parameters
                    if p["in"] == "query" and p.get("required") and p["name"] in SAMPLES}
        if path == "/api/profile":  # wants one of trace_id, route or service
            required = {"service": "shop"}
        every = {p["name"]: SAMPLES[p["name"]] for p in parameters if p["in"] == "query" and p["name"] in SAMPLES}
        every.pop("trace_id", None)
        found.append((f"GET {path}", concrete + (f"?{urlencode(required)}" if required else "")))
        if every and every != required:
            found.append((f"GET {path} (all filters)", f"{concrete}?{urlencode(every)}"))
        page = concrete[len("/api"):]
        listed = {p.format(**path_values).split("?")[0] for p in PAGES}
        if page and page not in listed and collector.get(page)[0] == 200:
            found.append((f"page {page}", page))
    for page in PAGES:
        found.append((f"page {page}", page.format(**path_values)))
    return found


def measure(collector, found, repeat, bar_ms):
    over = []
    print(f"{'route':<70} {'status':>6} {'median ms':>10} {'max ms':>8}")
    for label, path in found:
        status, _, _ = collector.get(path)  # untimed: warms the caches as a second visitor would find them
        times = []
        for _ in range(repeat):
            status, seconds, _ = collector.get(path)
            times.append(seconds * 1000)
        median = statistics.median(times)
        flag = "" if median <= bar_ms and status < 500 else "  OVER THE BAR" if status < 500 else "  FAILED"
        if flag:
            over.append(label)
        print(f"{label[:70]:<70} {status:>6} {median:>10.1f} {max(times):>8.1f}{flag}", flush=True)
    return over


def run(db, args, fill_store=True):
    collector = Collector(db)
    try:
        if fill_store:
            print(f"filling {db} with {args.spans:,} spans through {collector.url}/v1/traces …", flush=True)
            seconds = fill(collector, args.spans)
            print(f"  {args.spans / seconds:,.0f} spans/s, {seconds:.0f} s", flush=True)
        health = _api(collector, "/health")
        print(f"store: {health.get('store')}", flush=True)
        print(f"  the rollup caught up {wait_for_rollup(collector):.0f} s after", flush=True)
        return measure(collector, targets(collector), args.repeat, args.bar)
    finally:
        collector.stop()


def _postgres_database():
    """A new database on ``POSTGRES_URL``'s server: ``(url, drop)``, or ``None`` when unreachable."""
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the server is not usable
        print(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}; skipped")
        return None
    name = f"spyglass_bench_ui_{os.urandom(4).hex()}"
    admin.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}"))

    def drop():
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    return url, drop


def _is_empty(url):
    """Whether the PostgreSQL database at ``url`` holds no spans yet."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        if connection.execute("SELECT to_regclass('spans')").fetchone()[0] is None:
            return True
        return connection.execute("SELECT 1 FROM spans LIMIT 1").fetchone() is None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--db", help="a SQLite file: filled on the first run, reused as it is after")
    parser.add_argument("--postgres-url", help="a PostgreSQL database: filled on the first run, reused as it is after")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bar", type=float, default=300.0, help="ms a route may take (default 300)")
    args = parser.parse_args(argv)
    over = []
    if args.store in ("sqlite", "both"):
        print("== SQLite")
        with tempfile.TemporaryDirectory(prefix="spyglass-bench-ui-") as tmp:
            db = args.db or os.path.join(tmp, "bench.db")
            over += run(db, args, fill_store=not (args.db and os.path.exists(args.db)))
    if args.store in ("postgresql", "both"):
        print("== PostgreSQL")
        database = (args.postgres_url, lambda: None) if args.postgres_url else _postgres_database()
        if database:
            url, drop = database
            try:
                over += run(url, args, fill_store=not args.postgres_url or _is_empty(url))
            finally:
                drop()
    print(f"\n{len(over)} over the bar of {args.bar:g} ms" + (f": {', '.join(over)}" if over else ""))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
