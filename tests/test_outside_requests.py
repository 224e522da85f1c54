"""Work outside any request is seen (issue 14, point 1): a script's calls, under
``spyglass run``, are counted in the metrics, and a slow or failed one arrives as a trace of
its own with its stack; ``spyglass.background_task`` and ``spyglass run --trace`` make whole
traces; a worker idle in its blocking waits sends no slow call.

Real parts: psycopg2 against PostgreSQL, a local HTTP server, a real ``spyglass serve`` and
``spyglass report``, a real ``rq worker`` on Redis, the OTLP receiver of tests/support.
"""
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from collector.conftest import REPO, RunningCollector
from support.processes import clean_env, run_python
from support.servers import histogram_count
from support.services import POSTGRES, REDIS, require_installed, require_tcp
from support.tasks import Worker, command, unique_name

SPYGLASS = [sys.executable, "-m", "spyglass.cli"]
CALL_CATEGORY = "spyglass.category"

JOB = """
import json
import urllib.request

import psycopg2

connection = psycopg2.connect(host={host!r}, port={port}, user="postgres", dbname="test")
cursor = connection.cursor()
for _ in range(3):
    cursor.execute("SELECT pg_sleep(0.5)")
    cursor.fetchall()
for path in ("/one", "/two"):
    with urllib.request.urlopen({url!r} + path) as response:
        print(path, response.status, response.read().decode())
print("parsing the report")
json.loads("{{not json")
"""


@pytest.fixture
def http_server():
    """A local HTTP server answering every GET with ``ok``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(argv, cwd, **env):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=clean_env(**env))


def poll(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_a_job_under_spyglass_run_shows_its_slow_calls_with_stacks_and_its_error(
        tmp_path, http_server):
    host, port = require_tcp(*POSTGRES)
    job = tmp_path / "job.py"
    job.write_text(textwrap.dedent(JOB.format(host=host, port=port, url=http_server)))
    collector = RunningCollector(tmp_path / "spyglass.db")
    try:
        bare = run([sys.executable, "job.py"], tmp_path)
        seen = run(SPYGLASS + ["run", "--", sys.executable, "job.py"], tmp_path,
                   SPYGLASS_ENDPOINT=collector.url, PYTHONPATH=str(REPO))
        # The script's own output and exit status, exactly as without spyglass.
        assert bare.returncode == 1 and "JSONDecodeError" in bare.stderr
        assert (seen.returncode, seen.stdout, seen.stderr) == (bare.returncode, bare.stdout,
                                                               bare.stderr)

        def report():
            result = run(SPYGLASS + ["report", "--url", collector.url, "--service", "job",
                                     "--width", "120"], tmp_path, PYTHONPATH=str(REPO))
            text = result.stdout
            return text if "SELECT pg_sleep(?)" in text and "JSONDecodeError" in text else None

        text = poll(report)
        assert text, run(SPYGLASS + ["report", "--url", collector.url], tmp_path,
                         PYTHONPATH=str(REPO)).stdout
        calls = collector.api("/slow-calls", service="job", since="1h")["calls"]
        sleeps = [call for call in calls if call["label"] == "SELECT pg_sleep(?)"]
        assert len(sleeps) == 1 and sleeps[0]["count"] == 3, calls
        line = next(line for line in text.splitlines() if "SELECT pg_sleep(?)" in line)
        assert line.split()[0] == "job" and " 3 " in line, text
        # Each slow call is a trace of its own: a root CLIENT span with the script's stack.
        trace = collector.api(f"/traces/{sleeps[0]['slowest_trace_id']}")
        spans = trace["spans"]
        assert len(spans) == 1 and spans[0]["kind"] == 3 and not spans[0].get("parent_id"), spans
        attributes = spans[0]["attributes"]
        assert attributes["spyglass.slow"] is True
        stack = attributes["spyglass.stack"]
        assert 'job.py", line 10, in <module>' in stack and "cursor.execute(" in stack, stack
        assert "pg_sleep" not in attributes["spyglass.stack"]  # the source's literal, masked
        # The fast HTTP calls: counted, never traces of their own.
        assert not [call for call in calls if call["category"] == "remote"], calls
        errors = collector.api("/errors", service="job", since="1h")["groups"]
        assert len(errors) == 1 and errors[0]["type"].endswith("JSONDecodeError"), errors
    finally:
        collector.stop()


def test_fast_calls_outside_a_trace_reach_the_metrics_but_no_trace(receiver):
    run_python("""
        import sqlite3
        connection = sqlite3.connect(":memory:")
        for _ in range(25):
            connection.execute("SELECT 1").fetchall()
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert receiver.wait_for(lambda r: histogram_count(
        r, "db.client.operation.duration", **{"db.system": "sqlite", "db.operation.name": "SELECT"})
        >= 25)
    assert receiver.spans() == []


def test_a_failed_call_outside_a_trace_is_a_trace_of_its_own(receiver):
    run_python("""
        import sqlite3
        connection = sqlite3.connect(":memory:")
        try:
            connection.execute("SELECT nothing FROM nowhere")
        except sqlite3.OperationalError:
            pass
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    spans = receiver.wait_for(lambda r: r.spans())
    assert len(spans) == 1 and not spans[0].get("parentSpanId")
    assert spans[0]["status"]["code"] == 2 and spans[0]["attrs"][CALL_CATEGORY] == "sql"
    assert spans[0]["events"][0]["name"] == "exception"


BACKGROUND_TASKS = """
    import asyncio
    import sqlite3

    import spyglass

    connection = sqlite3.connect(":memory:")

    @spyglass.background_task("sync-decorated")
    def sync_job():
        for _ in range(5):  # an N+1 loop: folded, as in a request
            connection.execute("SELECT 1").fetchall()
        return "sync"

    @spyglass.background_task("async-decorated")
    async def async_job():
        connection.execute("SELECT 2").fetchall()
        async with spyglass.background_task("nested"):
            connection.execute("SELECT 3 AS three").fetchall()
        return "async"

    print(sync_job(), asyncio.run(async_job()))
    with spyglass.background_task("context-managed"):
        connection.execute("SELECT 4").fetchall()
    try:
        with spyglass.background_task("failing"):
            raise KeyError("gone")
    except KeyError:
        print("raised")
"""


def test_background_task_as_decorator_and_context_manager_sync_and_async(receiver):
    result = run_python(BACKGROUND_TASKS, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split() == ["sync", "async", "raised"]
    roots = receiver.wait_for(lambda r: len([s for s in r.spans() if not s.get("parentSpanId")])
                              >= 4 and r.spans())
    by_name = {span["name"]: span for span in roots}
    for name in ("sync-decorated", "async-decorated", "context-managed", "failing"):
        assert not by_name[name].get("parentSpanId"), name
    nested = by_name["nested"]
    assert nested["parentSpanId"] == by_name["async-decorated"]["spanId"]
    assert nested["traceId"] == by_name["async-decorated"]["traceId"]
    sync_calls = [s for s in roots if s.get("parentSpanId") == by_name["sync-decorated"]["spanId"]]
    assert len(sync_calls) == 1 and sync_calls[0]["attrs"]["spyglass.count"] == 5
    assert [s["name"] for s in roots if s.get("parentSpanId") == nested["spanId"]] == ["SELECT"]
    assert by_name["failing"]["status"]["code"] == 2


def test_spyglass_run_trace_makes_the_whole_run_one_trace(tmp_path, receiver):
    script = tmp_path / "nightly.py"
    script.write_text(textwrap.dedent("""
        import sqlite3
        connection = sqlite3.connect(":memory:")
        for statement in ("SELECT 1", "SELECT 1 AS one", "SELECT 1"):
            connection.execute(statement).fetchall()
        print("done")
    """))
    result = run(SPYGLASS + ["run", "--trace", "--", sys.executable, str(script)], tmp_path,
                 SPYGLASS_ENDPOINT=receiver.url, PYTHONPATH=str(REPO))
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")
    spans = receiver.wait_for(lambda r: r.spans())
    roots = [span for span in spans if not span.get("parentSpanId")]
    assert [root["name"] for root in roots] == ["nightly"]
    calls = [span for span in spans if span.get("parentSpanId")]
    assert {span["traceId"] for span in spans} == {roots[0]["traceId"]}
    assert len(calls) >= 3 and all(span["attrs"][CALL_CATEGORY] == "sql" for span in calls)


def blocking_calls(receiver):
    # Not "no span at all": on a loaded machine a heartbeat's EXISTS may pass 0.1 s.
    return [(span["name"], span["attrs"]) for span in receiver.spans()
            if span["name"] in ("BLMOVE", "BLPOP") or span["attrs"].get("spyglass.slow")
            and span["attrs"].get("db.operation.name") in ("BLMOVE", "BLPOP")]


def test_an_idle_rq_worker_sends_no_slow_call(receiver):
    require_installed("rq")
    host, port = require_tcp(*REDIS)
    queue = unique_name("idle")
    # --worker-ttl 16: RQ's blocking pop waits a second at a time, ten times the threshold.
    worker = Worker([command("rq"), "worker", "--worker-ttl", "16", "--url",
                     f"redis://{host}:{port}/11", queue], receiver)
    try:
        worker.wait_for_output(r"Listening on|\*\*\* Listening")
        time.sleep(4)
        # Its waits are counted in the metrics (sent every second; one queue: BLMOVE,
        # several: BLPOP), never slow.
        waits = lambda r: sum(histogram_count(r, "db.client.operation.duration", **{  # noqa: E731
            "db.system": "redis", "db.operation.name": name}) for name in ("BLMOVE", "BLPOP"))
        assert receiver.wait_for(lambda r: waits(r) >= 2), worker.output()
        assert blocking_calls(receiver) == []
        worker.send(signal.SIGINT)  # a warm shutdown: its wait ends by an exception
        if not worker.ended(10):
            worker.kill()  # RQ's teardown may wait for its pubsub thread (rq#1613)
        time.sleep(1)
        assert blocking_calls(receiver) == []
    finally:
        worker.close()
