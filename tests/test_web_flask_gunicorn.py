"""End to end: the unmodified Flask app under a real WSGI server (gunicorn), real HTTP in,
real OTLP out."""
import os
import signal
import subprocess
import sys

import httpx
import pytest

from support.processes import clean_env
from support.services import free_port, require
from support.web import APPS, wait_for_port


@pytest.fixture
def gunicorn(receiver):
    require(subprocess.run([sys.executable, "-c", "import gunicorn"]).returncode == 0,
            "gunicorn not installed")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--chdir", APPS,
         "flask_app:app"],
        env=clean_env(AUTOWRAPT_BOOTSTRAP="flask", SPYGLASS_ENDPOINT=receiver.url,
                      SPYGLASS_FLUSH_INTERVAL="0.2", SPYGLASS_METRICS_INTERVAL="0",
                      SPYGLASS_IGNORE_PATHS="/health"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_flask_under_gunicorn(receiver, gunicorn):
    with httpx.Client(base_url=gunicorn) as client:
        ok = client.get("/users/7", params={"token": "tok-SECRET-9"},
                        headers={"Authorization": "Bearer auth-SECRET-9"})
        boom = client.get("/boom")
        streamed = client.get("/stream")
    assert ok.status_code == 200 and ok.json() == {"id": 7, "q": None}
    assert boom.status_code == 500
    assert streamed.text == "chunk 0\nchunk 1\nchunk 2\n"
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 3 and r.spans())
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"GET /users/<int:uid>", "GET /boom", "GET /stream"}
    assert all(span["kind"] == 2 for span in spans)
    boom_span = by_name["GET /boom"]
    assert boom_span["status"]["code"] == 2
    exception, = [e for e in boom_span["events"] if e["name"] == "exception"]
    assert {a["key"]: a["value"]["stringValue"] for a in exception["attributes"]}[
        "exception.type"] == "ZeroDivisionError"
    assert by_name["GET /users/<int:uid>"]["attrs"]["server.address"] == "127.0.0.1"
    errors = receiver.wait_for(lambda r: [x for x in r.log_records()
                                          if x["attrs"].get("event.name") == "spyglass.error"])
    assert len(errors) == 1
    text = receiver.raw_text()
    assert "SECRET-9" not in text
    assert receiver.schema_errors == []
