"""Pyramid under gunicorn, plain and under AUTOWRAPT_BOOTSTRAP: the same answers, and each
request a SERVER span named by its route pattern through spyglass's tween, added without
a change to the app."""
import signal
import sys

import httpx
import pytest

from support.services import require_installed
from support.web import assert_no_route, serve

pytest.importorskip("pyramid")

PATHS = ["/users/7?token=tok-SECRET-1", "/boom", "/invalid", "/broken", "/missing", "/stream",
         "/nowhere", "/subscribe"]
GUNICORN = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}",
            "pyramid_app:app"]


def answers(receiver, bootstrap):
    process, base = serve(receiver, GUNICORN, bootstrap=bootstrap)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer auth-SECRET-2"}) as client:
            found = [(path, client.get(path).status_code, client.get(path).text) for path in PATHS]
        if bootstrap:
            receiver.wait_for(lambda r: len([s for s in r.spans() if s["kind"] == 2])
                              >= 2 * len(PATHS))
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output
    return found


@pytest.fixture(scope="module")
def runs(module_receiver):
    require_installed("gunicorn")
    return answers(module_receiver, "spyglass"), answers(module_receiver, ""), module_receiver


def test_the_answers_are_the_apps(runs):
    traced, plain, _ = runs
    assert traced == plain
    assert [status for _, status, _ in traced] == [200, 500, 400, 500, 404, 200, 404, 404]


def test_requests_are_named_by_the_route_pattern(runs):
    *_, receiver = runs
    spans = {span["name"]: span for span in receiver.spans() if span["kind"] == 2}
    assert set(spans) == {"GET /users/{id}", "GET /boom", "GET /invalid", "GET /broken",
                          "GET /missing", "GET /stream", "GET"}
    user = spans["GET /users/{id}"]
    assert user["attrs"]["http.route"] == "/users/{id}"
    assert user["attrs"]["http.response.status_code"] == 200
    assert spans["GET /missing"].get("status", {}).get("code", 0) == 0
    assert spans["GET /invalid"].get("status", {}).get("code", 0) == 0
    assert receiver.schema_errors == []


def test_requests_no_route_matched_are_named_by_their_method_without_a_route(runs):
    *_, receiver = runs
    for path in ("/nowhere", "/subscribe"):  # /subscribe's route takes POST only
        spans = [s for s in receiver.spans() if s["attrs"].get("url.path") == path]
        assert len(spans) == 2  # each path is asked for twice
        for span in spans:
            assert_no_route([span], path, 404)


def test_exceptions_are_reported_once_each(runs):
    *_, receiver = runs
    errors = [r for r in receiver.log_records() if r["attrs"].get("event.name") == "spyglass.error"]
    # /boom (no exception view: gunicorn answers 500) and /broken (the app's 500 page), twice
    # each; /invalid is the app's own 400, /missing Pyramid's 404
    assert sorted(r["attrs"]["exception.type"] for r in errors) == [
        "KeyError", "KeyError", "ZeroDivisionError", "ZeroDivisionError"]
    spans = {span["spanId"]: span for span in receiver.spans()}
    assert {spans[r["spanId"]]["name"] for r in errors} == {"GET /boom", "GET /broken"}
    assert all(spans[r["spanId"]]["status"]["code"] == 2 for r in errors)


def test_secrets_are_scrubbed(runs):
    *_, receiver = runs
    text = receiver.raw_text()
    assert "tok-SECRET-1" not in text and "auth-SECRET-2" not in text
