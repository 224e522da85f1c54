"""spyglass demo: the main job runs to the end (--no-wait); its outbound step makes one trace
across two services, at the collector; it stops everything it started when interrupted."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import psutil
import pytest

from support.processes import clean_env
from support.services import free_port, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UWSGI = os.path.join(os.path.dirname(sys.executable), "uwsgi")
DEMO = [sys.executable, "-m", "spyglass.cli", "demo"]
SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture
def uwsgi_installed():
    require(os.access(UWSGI, os.X_OK), f"uWSGI is not installed beside {sys.executable}")


def test_demo_runs_to_the_end_and_reports_routes_slow_calls_and_errors(uwsgi_installed, tmp_path):
    env = clean_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                    EXAMPLE_DATABASE=str(tmp_path / "example.sqlite3"))
    result = subprocess.run(DEMO + ["--no-wait"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in ("sent 182 requests", "demo-shop", "inventory", "GET /users/<int:uid>",
                     "GET /slow-sql", "GET /n-plus-one", "GET /outbound", "GET /stock/<int:item>",
                     "GET /error", "WITH RECURSIVE", "RuntimeError: this route always fails",
                     "LATEST RUNTIME METRICS", "DISTRIBUTED TRACE",
                     "spans services demo-shop, inventory"):
        assert expected in out, expected
    assert "(no runtime metrics in this window)" not in out


def test_the_outbound_step_is_one_trace_across_two_services_and_an_interrupted_demo_stops_all(
        uwsgi_installed, tmp_path):
    env = clean_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                    EXAMPLE_DATABASE=str(tmp_path / "example.sqlite3"))
    port = free_port()
    with subprocess.Popen(DEMO + ["--port", str(port)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, text=True) as demo:
        for line in demo.stdout:
            if "press Ctrl-C" in line:
                break
        _outbound_trace(f"http://127.0.0.1:{port}")
        # What this demo started (not another run's collector on the same machine).
        started = [str(child.pid) for child in psutil.Process(demo.pid).children(recursive=True)
                   if any(what in _command_line(child) for what in (
                       "uwsgi_examples/uwsgi.ini", "spyglass.cli serve", "inventory.py"))]
        assert len(started) >= 3
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        demo.stdout.read()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        alive = [pid for pid in started if os.path.exists(f"/proc/{pid}")]
        if not alive:
            break
        time.sleep(0.2)
    assert not alive


def _outbound_trace(collector):
    """The shop's ``GET /outbound`` traces, as the collector stored them, once checked to
    cross into the inventory service: its request is a child of the shop's call."""
    query = urllib.parse.urlencode({"service": "demo-shop", "route": "GET /outbound",
                                    "since": "15m"})
    found = _get_json(f"{collector}/api/traces?{query}")["traces"]
    assert len(found) == 10  # the workload's
    for summary in found:
        trace = _get_json(f"{collector}/api/traces/{summary['trace_id']}")
        assert trace["services"] == ["demo-shop", "inventory"]
        spans = {span["span_id"]: span for span in trace["spans"]}
        served = [span for span in spans.values()
                  if span["kind"] == SERVER and span["service"] == "inventory"]
        assert len(served) == 1
        caller = spans[served[0]["parent_span_id"]]
        assert caller["kind"] == CLIENT and caller["service"] == "demo-shop"


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _command_line(process):
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


def test_demo_sends_a_release_to_a_running_collector(uwsgi_installed, tmp_path):
    """--collector: no collector of its own; --release: the app's service.version, shown as a
    release of the service."""
    from collector.conftest import RunningCollector

    collector = RunningCollector(tmp_path / "shared.db")
    try:
        env = clean_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                        EXAMPLE_DATABASE=str(tmp_path / "example.sqlite3"))
        result = subprocess.run(DEMO + ["--no-wait", "--collector", collector.url, "--release", "9.9"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"sending to the collector at {collector.url}" in result.stdout
        assert "starting the collector" not in result.stdout
        overview = collector.api("/services/demo-shop", since="15m")
        assert [release["version"] for release in overview["releases"]] == ["9.9"]
        assert overview["requests"] >= 180
    finally:
        collector.stop()
