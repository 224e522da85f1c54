"""FastAPI (Starlette), automatic under AUTOWRAPT_BOOTSTRAP=fastapi: in process through
httpx's ASGI transport, and end to end under uvicorn."""
import signal
import subprocess
import sys

import httpx
import pytest

from support.processes import clean_env
from support.services import free_port
from support.web import APPS, assert_no_route, drive, wait_for_port

DRIVER = """
    import asyncio, json
    import httpx
    from fastapi_app import app, background_runs

    async def main():
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for path in ["/users/7?token=tok-SECRET-1", "/boom", "/sync-boom", "/missing",
                         "/stream", "/background", "/nowhere", "/items"]:
                response = await client.get(path, headers={"Authorization": "Bearer auth-SECRET-2"})
                print(json.dumps({"path": path, "status": response.status_code,
                                  "body": response.text,
                                  "headers": sorted(response.headers.items())}))
    asyncio.run(main())
    print(json.dumps({"background": background_runs}))
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, bootstrap="fastapi")


def test_spans_are_named_by_path_template(run):
    span = run.span("GET /users/{user_id}")
    assert span["kind"] == 2
    assert span["attrs"]["http.route"] == "/users/{user_id}"
    assert span["attrs"]["http.response.status_code"] == 200
    assert span["attrs"]["user_agent.original"].startswith("python-httpx")
    assert run.span("GET /missing").get("status", {}).get("code", 0) == 0


def test_requests_no_route_matched_are_named_by_their_method_without_a_route(run):
    assert_no_route(run.spans(), "/nowhere", 404)
    assert_no_route(run.spans(), "/items", 405)  # the route is POST's: its path alone matched
    statuses = {o["path"]: o["status"] for o in run.outputs if "path" in o}
    assert (statuses["/nowhere"], statuses["/items"]) == (404, 405)


def test_async_and_sync_endpoint_exceptions_mark_the_span_and_are_reported(run):
    for name, kind in (("GET /boom", "ZeroDivisionError"), ("GET /sync-boom", "RuntimeError")):
        span = run.span(name)
        assert span["status"]["code"] == 2
        assert span["attrs"]["http.response.status_code"] == 500
        assert [e for e in span["events"] if e["name"] == "exception"]
        error, = [e for e in run.errors() if e["type"] == kind]
        assert error["_record"]["spanId"] == span["spanId"]


def test_streaming_and_background_tasks_are_untouched(run):
    plain = drive(DRIVER, bootstrap=None)
    assert plain.outputs == run.outputs
    assert run.outputs[-1] == {"background": ["ran"]}
    assert run.span("GET /stream")["attrs"]["http.response.status_code"] == 200


def test_secrets_are_scrubbed(run):
    text = run.receiver.raw_text()
    assert "tok-SECRET-1" not in text and "auth-SECRET-2" not in text
    assert run.receiver.schema_errors == []


def test_fastapi_under_uvicorn(receiver):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", APPS, "--port", str(port),
         "--log-level", "warning", "fastapi_app:app"],
        env=clean_env(AUTOWRAPT_BOOTSTRAP="fastapi", SPYGLASS_ENDPOINT=receiver.url,
                      SPYGLASS_FLUSH_INTERVAL="0.2", SPYGLASS_METRICS_INTERVAL="0",
                      SPYGLASS_IGNORE_PATHS="/health"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        # One connection each: after a 500 from an exception uvicorn closes the connection.
        assert httpx.get(base + "/users/3").json() == {"id": 3, "q": None}
        assert httpx.get(base + "/boom").status_code == 500
        assert httpx.get(base + "/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
        spans = receiver.wait_for(lambda r: len(r.spans()) >= 3 and r.spans())
        assert {s["name"] for s in spans} == {"GET /users/{user_id}", "GET /boom", "GET /stream"}
        errors = receiver.wait_for(lambda r: [x for x in r.log_records()
                                              if x["attrs"].get("event.name") == "spyglass.error"])
        # uvicorn logs the exception it got from the app: still one event.
        assert len(errors) == 1
        assert receiver.schema_errors == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
