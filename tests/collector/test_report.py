"""``spyglass report`` and the ``spyglass`` command line."""
import os
import subprocess
import sys

from support.web import drive

from .conftest import REPO
from . import demo_data, payloads


def _spyglass(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "spyglass.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, **kwargs)


def test_report_summarizes_in_80_columns(collector):
    demo_data.fill(collector)
    result = _spyglass("report", "--url", collector.url, "--since", "1h")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = result.stdout
    for section in ("SERVICES", "ROUTES BY P95", "SLOWEST CALLS BY TOTAL TIME", "TOP ERROR GROUPS",
                    "LATEST RUNTIME METRICS"):
        assert section in lines
    for name in ("shop", "POST /checkout", "GET /products/{id}", "ValueError: bad input", "GET payments.internal",
                 "testhost:101"):
        assert name in text, name
    runtime = lines[lines.index("LATEST RUNTIME METRICS") + 1:]
    assert runtime[0].split()[-6:] == ["cpu", "memory", "threads", "fds", "gc", "runs"] or \
        "memory" in runtime[0]
    assert any("testhost:101" in line and " MB" in line for line in runtime)
    services = lines[lines.index("SERVICES") + 2]
    assert services.split()[0] == "billing" or services.split()[0] == "shop"


def test_report_of_one_service_and_narrow_terminals(collector):
    _, spans = payloads.request_trace("narrow-service-with-a-long-name", "/a/very/long/route/{id}/details")
    collector.post_json("traces", payloads.traces("narrow-service-with-a-long-name", spans))
    result = _spyglass("report", "--url", collector.url, "--service", "narrow-service-with-a-long-name",
                       "--width", "60")
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 60
    assert "narrow-service-with-a-long-name" in result.stdout
    assert "shop" not in result.stdout


UNROUTED = """
    from flask_app import app
    client = app.test_client()
    for path in ("/nowhere", "/login", "/users/7"):  # 404, 405 (/login takes POST), 200
        client.get(path).close()  # as a server closes each response: the span ends there
"""


def test_requests_no_route_matched_show_as_their_method_and_no_route(collector):
    """A Flask app under the sensor, sending to this collector: its 404 and 405 are one
    route, ``GET (no route)``, in the API, the report and the services page."""
    drive(UNROUTED, receiver=collector, SPYGLASS_SERVICE_NAME="unrouted")
    routes = {row["name"]: row for row in collector.api("/routes", service="unrouted")["routes"]}
    assert sorted(routes) == ["GET (no route)", "GET /users/<int:uid>"]
    assert routes["GET (no route)"]["requests"] == 2
    unrouted = routes["GET (no route)"]["route"]  # what the services page's links filter by
    traces = collector.api("/traces", service="unrouted", route=unrouted)
    assert sorted(t["http_status"] for t in traces["traces"]) == [404, 405]
    assert collector.api("/profile", service="unrouted", route=unrouted)["samples"] == 0
    profile = _spyglass("report", "--url", collector.url, "--service", "unrouted", "--profile", unrouted)
    assert profile.returncode == 0 and "profile of GET (no route)" in profile.stdout
    report = _spyglass("report", "--url", collector.url, "--service", "unrouted")
    assert report.returncode == 0, report.stderr
    assert "unrouted · GET (no route)" in report.stdout and "GET GET" not in report.stdout
    status, _, page = collector.request("GET", "/?service=unrouted")
    assert status == 200
    assert "GET (no route)" in page.decode() and "GET GET" not in page.decode()


def test_report_of_a_service_the_collector_does_not_know_names_those_it_does(start_collector):
    collector = start_collector()
    empty = _spyglass("report", "--url", collector.url, "--service", "nosuch")
    assert empty.returncode == 1 and empty.stdout == ""
    assert empty.stderr.strip() == f"spyglass report: no service 'nosuch' at {collector.url}; it has none yet"
    for service in ("shop", "billing"):
        _, spans = payloads.request_trace(service, "/a")
        collector.post_json("traces", payloads.traces(service, spans))
    for args in ([], ["--profile", "GET /a"]):
        result = _spyglass("report", "--url", collector.url, "--service", "nosuch", *args)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.strip() == (f"spyglass report: no service 'nosuch' at {collector.url}; "
                                         f"its services: billing, shop")
    # A service known, but quiet in the window: the report, saying so.
    quiet = _spyglass("report", "--url", collector.url, "--service", "shop", "--since", "1ms")
    assert quiet.returncode == 0 and "(no services reported in this window)" in quiet.stdout


def test_report_says_why_when_the_collector_is_unreachable():
    result = _spyglass("report", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot read http://127.0.0.1:9/api/services" in result.stderr


def test_report_rejects_a_bad_window():
    result = _spyglass("report", "--since", "a while")
    assert result.returncode == 2 and "not a duration" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_lists_its_commands_and_imports_nothing_heavy():
    result = _spyglass("--help")
    assert result.returncode == 0 and "serve" in result.stdout and "report" in result.stdout
    probe = ("import sys, spyglass.cli; heavy = [m for m in ('google.protobuf', 'jinja2', 'sqlite3', "
             "'opentelemetry', 'spyglass.collector.server', 'http.server') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_serve_refuses_bad_options(tmp_path):
    result = _spyglass("serve", "--db", str(tmp_path / "x.db"), "--retention", "forever")
    assert result.returncode == 2 and "not a duration" in result.stderr
