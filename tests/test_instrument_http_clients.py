"""Outbound HTTP against a real local server that records the headers it received:
urllib3, requests, httpx (sync and async), urllib/http.client."""
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.calls import instrumented, request_span, run_traced

for name in ("http.client", "urllib3", "requests", "httpx"):
    instrumented(name)
import http.client  # noqa: E402
import urllib.request  # noqa: E402

import httpx  # noqa: E402
import requests  # noqa: E402
import urllib3  # noqa: E402


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = []
    tags = []  # every X-Tag header of each request, repeats included

    def do_GET(self):
        Recorder.received.append({k.lower(): v for k, v in self.headers.items()})
        Recorder.tags.append(self.headers.get_all("x-tag") or [])
        status = 503 if self.path.startswith("/fail") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def clear_received():
    Recorder.received.clear()
    Recorder.tags.clear()


def get_with_urllib3(url):
    return urllib3.PoolManager().request("GET", url).status


def get_with_requests(url):
    return requests.get(url).status_code


def get_with_httpx(url):
    with httpx.Client() as client:
        return client.get(url).status_code


def get_with_httpx_async(url):
    async def fetch():
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).status_code
    return asyncio.run(fetch())


def get_with_urllib(url):
    with urllib.request.urlopen(url) as response:
        return response.status


CLIENTS = [get_with_urllib3, get_with_requests, get_with_httpx, get_with_httpx_async,
           get_with_urllib]


@pytest.mark.parametrize("get", CLIENTS, ids=lambda f: f.__name__[9:])
def test_one_client_span_and_the_context_injected(get, server, exported):
    with request_span() as scope:
        assert get(server + "/items?page=2&api_key=s3cr3t") == 200
    span, = exported.calls()  # one, though requests runs on urllib3 on http.client
    assert span.kind == 3 and span.name == "GET"
    attrs = span.attributes
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.full"].endswith("/items?page=2&api_key=[Filtered]")
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["spyglass.category"] == "remote"
    headers, = Recorder.received
    trace_id = f"{scope.span.trace_id:032x}"
    # sampled, and a random trace id: a trace started here (W3C Trace Context Level 2)
    assert headers["traceparent"] == f"00-{trace_id}-{span.span_id:016x}-03"
    assert span.parent_id == scope.span.span_id


@pytest.mark.parametrize("get", CLIENTS, ids=lambda f: f.__name__[9:])
def test_outside_a_trace_nothing_is_recorded_or_injected(get, server, exported):
    assert get(server + "/") == 200
    assert exported.spans == [] and "traceparent" not in Recorder.received[0]


def test_a_users_own_trace_headers_are_respected_and_baggage_is_sent(server, exported):
    with request_span() as scope:
        scope.span.set_baggage_item("tenant", "acme")
        requests.get(server + "/", headers={"TraceParent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
        requests.get(server + "/")
    first, second = Recorder.received
    assert first["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert second["baggage"] == "tenant=acme"
    assert len(exported.calls()) == 2


def test_credentials_in_urls_are_scrubbed_and_5xx_is_an_error(server, exported):
    netloc = server.split("//")[1]
    with request_span():
        status = requests.get(f"http://user:hunter2@{netloc}/fail?token=abc&q=1").status_code
    assert status == 503
    span, = exported.calls()
    assert span.attributes["url.full"] == f"http://[Filtered]@{netloc}/fail?token=[Filtered]&q=1"
    assert span.status == 2 and span.attributes["http.response.status_code"] == 503


def test_a_failed_request_is_an_error_span_and_the_app_sees_its_exception(exported):
    with request_span():
        with pytest.raises(requests.ConnectionError):
            requests.get("http://127.0.0.1:9/")
    span, = exported.calls()
    assert span.status == 2 and span.events[0][1] == "exception"


def test_http_client_request_then_getresponse(server, exported):
    host, port = server.split("//")[1].split(":")
    with request_span():
        conn = http.client.HTTPConnection(host, int(port))
        conn.request("GET", "/raw", headers={"x-mine": "1"})
        assert conn.getresponse().read()
        conn.close()
    span, = exported.calls()
    assert span.attributes["url.full"] == f"{server}/raw"
    assert Recorder.received[0]["x-mine"] == "1" and "traceparent" in Recorder.received[0]


@pytest.mark.parametrize("traced", [False, True], ids=["outside", "inside"])
def test_http_client_sends_the_apps_headers_as_given_repeats_included(server, exported, traced):
    import contextlib
    import email.message

    headers = email.message.Message()  # http.client takes any mapping; this one repeats
    headers["X-Tag"] = "a"
    headers["X-Tag"] = "b"
    host, port = server.split("//")[1].split(":")
    with request_span() if traced else contextlib.nullcontext():
        conn = http.client.HTTPConnection(host, int(port))
        conn.request("GET", "/tags", headers=headers)
        assert conn.getresponse().read()
        conn.close()
    assert Recorder.tags == [["a", "b"]]
    assert headers.get_all("X-Tag") == ["a", "b"] and "traceparent" not in headers
    assert ("traceparent" in Recorder.received[0]) is traced


def test_spyglass_own_exports_are_never_traced(receiver):
    spans, _ = run_traced(receiver, """
        import requests, httpx
        print(requests.get("http://127.0.0.1:9", timeout=0.01) if False else "ok")
    """, expect_spans=1)
    assert [s["name"] for s in spans] == ["request"]  # the export itself made no span
    assert all(s["attrs"].get("spyglass.category") != "remote" for s in spans)
