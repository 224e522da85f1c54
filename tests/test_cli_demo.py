"""spyglass demo: the main job runs to the end (--no-wait), and stops everything it started
when interrupted."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from support.processes import clean_env
from support.services import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UWSGI = os.path.join(os.path.dirname(sys.executable), "uwsgi")
DEMO = [sys.executable, "-m", "spyglass.cli", "demo"]


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
    for expected in ("sent 182 requests", "demo-shop", "GET /users/<int:uid>", "GET /slow-sql",
                     "GET /n-plus-one", "GET /outbound", "GET /error", "WITH RECURSIVE",
                     "RuntimeError: this route always fails", "LATEST RUNTIME METRICS"):
        assert expected in out, expected
    assert "(no runtime metrics in this window)" not in out


def test_an_interrupted_demo_stops_everything_it_started(uwsgi_installed, tmp_path):
    env = clean_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
                    EXAMPLE_DATABASE=str(tmp_path / "example.sqlite3"))
    with subprocess.Popen(DEMO, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as demo:
        for line in demo.stdout:
            if "press Ctrl-C" in line:
                break
        # What this demo started (not another run's collector on the same machine).
        started = [str(child.pid) for child in psutil.Process(demo.pid).children(recursive=True)
                   if any(what in _command_line(child)
                          for what in ("uwsgi_examples/uwsgi.ini", "spyglass.cli serve"))]
        assert started
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


def _command_line(process):
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone meanwhile
        return ""
