"""Outbound HTTP changes nothing but the added trace headers.

A raw socket server records every header line exactly as it arrived. The same program makes
the same requests with urllib3, requests, httpx and http.client (urllib) in a plain
interpreter and under AUTOWRAPT_BOOTSTRAP=spyglass, outside and inside an active span: the
lines must be the same, plus ``traceparent``/``baggage`` inside the span, and what the
program can see of its own header objects afterwards must be the same too.
"""
import json
import socketserver
import subprocess
import sys
import tempfile
import threading

import pytest

from support.calls import instrumented, request_span
from support.processes import clean_env

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


class RawRecorder(socketserver.StreamRequestHandler):
    """Keeps each request's line and header lines as sent; answers ``ok``, or a redirect
    to ``/final/...`` for a path starting with ``/redirect/``."""

    def handle(self):
        while True:
            request_line = self.rfile.readline(65537)
            if not request_line:
                return
            lines, length = [], 0
            while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                lines.append(line.rstrip(b"\r\n").decode("latin-1"))
                name, _, value = lines[-1].partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            self.server.received.append((f"{method} {path}", lines))
            if path.startswith("/redirect/"):
                head = f"HTTP/1.1 302 Found\r\nLocation: /final/{path[10:]}\r\nContent-Length: 0\r\n\r\n"
                self.wfile.write(head.encode())
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture(scope="module")
def raw_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RawRecorder)
    server.daemon_threads = True
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# The app: header objects of every kind each library takes, repeated and case-merged fields
# included; it prints what it can see of them afterwards.
PROGRAM = r'''
import contextlib, email.message, http.client, json, os, sys, urllib.request
import httpx, requests, urllib3

base = sys.argv[1]
host, port = base.split("//")[1].split(":")
seen = {}

def urllib3_calls(phase):
    fields = urllib3.HTTPHeaderDict()
    fields.add("X-Rep", "1")
    fields.add("X-Rep", "4")
    fields.add("x-rep", "5")          # merged with X-Rep, case-insensitively
    fields["X-Case"] = "a"
    fields["x-CASE"] = "b"            # replaces X-Case
    pool = urllib3.HTTPConnectionPool(host, int(port), headers={"X-Pool": "p"})
    pool.urlopen("GET", f"/{phase}/urllib3-dict", headers=fields).read()
    pool.urlopen("GET", f"/{phase}/urllib3-pool").read()                 # the pool's headers
    pool.urlopen("POST", f"/{phase}/urllib3-body", "a=1", {"Content-Type": "text/plain"}).read()
    pool.urlopen("GET", f"/{phase}/urllib3-tuple", None, fields).read()  # positional headers
    manager = urllib3.PoolManager(headers=fields)
    manager.request("GET", f"{base}/redirect/{phase}/urllib3-manager").read()
    urllib3.request("GET", f"{base}/{phase}/urllib3-request", headers={"A": "1", "a": "2"})
    seen[f"{phase} urllib3"] = [type(fields).__name__, list(fields.items()), pool.headers]

def requests_calls(phase):
    session = requests.Session()
    session.headers["X-Session"] = "s"
    response = session.get(f"{base}/{phase}/requests", headers={"x-session": "o", "X-Other": "1"})
    prepared = requests.Request("GET", f"{base}/{phase}/requests-prepared", headers={"B": "2"}).prepare()
    first, second = session.send(prepared), session.send(prepared)
    redirected = session.get(f"{base}/redirect/{phase}/requests")
    seen[f"{phase} requests"] = [
        type(response.request.headers).__name__, dict(response.request.headers),
        dict(prepared.headers), first.request is prepared, second.request is prepared,
        [dict(r.request.headers) for r in redirected.history]]

def httpx_calls(phase):
    with httpx.Client(headers={"X-Client": "c"}) as client:
        response = client.get(f"{base}/{phase}/httpx",
                              headers=[("X-Rep", "1"), ("X-Rep", "2"), ("x-rep", "3")])
        request = client.build_request("GET", f"{base}/{phase}/httpx-request", headers={"B": "2"})
        client.send(request), client.send(request)
        client.get(f"{base}/redirect/{phase}/httpx", follow_redirects=True)
    seen[f"{phase} httpx"] = [type(response.request.headers).__name__,
                              response.request.headers.multi_items(), request.headers.multi_items()]

def http_client_calls(phase):
    message = email.message.Message()
    message["X-Rep"] = "1"
    message["X-Rep"] = "2"
    plain = {"X-Plain": "1"}
    connection = http.client.HTTPConnection(host, int(port))
    for name, headers in (("message", message), ("dict", plain)):
        connection.request("GET", f"/{phase}/http.client-{name}", headers=headers)
        connection.getresponse().read()
    connection.request("GET", f"/{phase}/http.client-none")
    connection.getresponse().read()
    connection.close()
    request = urllib.request.Request(f"{base}/{phase}/urllib", headers={"x-one": "1"})
    request.add_header("X-Two", "2")
    urllib.request.urlopen(request).read()
    seen[f"{phase} http.client"] = [message.items(), plain, request.header_items()]

if os.environ.get("AUTOWRAPT_BOOTSTRAP"):
    import spyglass
    def traced():
        scope = spyglass.tracer().start_active_span("request")
        scope.span.set_baggage_item("tenant", "acme")
        return scope
else:
    traced = contextlib.nullcontext
for phase, around in (("outside", contextlib.nullcontext), ("inside", traced)):
    for calls in (urllib3_calls, requests_calls, httpx_calls, http_client_calls):
        with around():
            calls(phase)
print(json.dumps(seen, sort_keys=True, default=repr))
'''


def run_app(server, receiver=None):
    server.received.clear()
    env = clean_env()
    if receiver is not None:
        env = clean_env(AUTOWRAPT_BOOTSTRAP="spyglass", SPYGLASS_ENDPOINT=receiver.url,
                        SPYGLASS_SERVICE_NAME="tests", SPYGLASS_METRICS_INTERVAL="0")
    host, port = server.server_address
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="headers_app_") as program:
        program.write(PROGRAM)
        program.flush()
        result = subprocess.run([sys.executable, program.name, f"http://{host}:{port}"],
                                env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(server.received), json.loads(result.stdout)


def without_trace_headers(lines):
    return [line for line in lines if line.partition(":")[0].lower() not in TRACE_HEADERS]


def test_the_wire_and_the_apps_objects_change_by_the_trace_headers_only(raw_server, receiver):
    plain, plain_seen = run_app(raw_server)
    traced, traced_seen = run_app(raw_server, receiver)

    assert traced_seen == plain_seen  # every header object of the app as it would be
    assert [request for request, _ in traced] == [request for request, _ in plain]
    assert len(plain) == 42  # 21 requests outside a span, 21 inside
    for (request, lines), (_, expected) in zip(traced, plain):
        assert without_trace_headers(lines) == expected, request
        added = [line for line in lines if line not in expected]
        if request.split(" ")[1].startswith(("/outside/", "/redirect/outside/", "/final/outside/")):
            assert added == [], request
        else:
            names = [line.partition(":")[0] for line in added]
            assert names == ["traceparent", "baggage"], request
            assert "baggage: tenant=acme" in added

    # The repeats the app asked for went out as repeats, not joined.
    urllib3_lines = dict(traced)["GET /inside/urllib3-dict"]
    assert [line for line in urllib3_lines if line.lower().startswith("x-")] == [
        "X-Rep: 1", "X-Rep: 4", "X-Rep: 5", "x-CASE: b"]
    assert "X-Rep: 1" in dict(traced)["GET /final/inside/urllib3-manager"]
    assert [line for line in dict(traced)["GET /inside/httpx"] if line.lower().startswith("x-rep")] == [
        "X-Rep: 1", "X-Rep: 2", "x-rep: 3"]
    assert [line for line in dict(traced)["GET /inside/http.client-message"]
            if line.startswith("X-Rep")] == ["X-Rep: 1", "X-Rep: 2"]


def test_a_request_object_sent_twice_carries_each_sends_own_context(raw_server, exported):
    """And the app's object is left as it was: the context is not stuck in it."""
    requests = instrumented("requests")
    httpx = instrumented("httpx")
    url = "http://%s:%d/twice" % raw_server.server_address
    prepared = requests.Request("GET", url, headers={"B": "2"}).prepare()
    with httpx.Client() as client:
        request = client.build_request("GET", url, headers={"B": "2"})
        raw_server.received.clear()
        for send, sent_twice in ((requests.Session().send, prepared), (client.send, request)):
            for _ in range(2):
                with request_span():
                    send(sent_twice)
    spans = exported.calls()
    sent = [line[len("traceparent: "):] for _, lines in raw_server.received for line in lines
            if line.startswith("traceparent: ")]
    # -03: sampled, and the random-trace-id flag of a trace started here
    assert sent == [f"00-{span.trace_id:032x}-{span.span_id:016x}-03" for span in spans]
    assert len(set(sent)) == 4
    assert dict(prepared.headers) == {"B": "2"}
    assert request.headers.multi_items() == [("host", "%s:%d" % raw_server.server_address),
                                             ("accept", "*/*"), ("accept-encoding", "gzip, deflate"),
                                             ("connection", "keep-alive"),
                                             ("user-agent", f"python-httpx/{httpx.__version__}"),
                                             ("b", "2")]


def test_an_apps_own_trace_headers_go_out_as_given(raw_server, exported):
    urllib3 = instrumented("urllib3")
    headers = urllib3.HTTPHeaderDict()
    headers.add("TraceParent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    headers.add("Baggage", "a=1")
    headers.add("baggage", "b=2")
    raw_server.received.clear()
    with request_span():
        urllib3.PoolManager().request("GET", "http://%s:%d/own" % raw_server.server_address,
                                      headers=headers)
    _, lines = raw_server.received[0]
    assert [line for line in lines if line.split(":")[0].lower() in TRACE_HEADERS] == [
        "TraceParent: 00-" + "1" * 32 + "-" + "2" * 16 + "-01", "Baggage: a=1", "Baggage: b=2"]


class MyHeaders(dict):
    pass


def test_header_copies_keep_the_type_and_every_field():
    import email.message
    import types

    import httpx
    import requests
    import urllib3

    from spyglass.instrument._http import copy_headers

    repeated = urllib3.HTTPHeaderDict()
    repeated.add("A", "1")
    repeated.add("a", "4")
    message = email.message.Message()
    message["A"], message["A"] = "1", "4"
    originals = [{"A": "1"}, MyHeaders(A="1"), repeated, message,
                 requests.structures.CaseInsensitiveDict(A="1"), httpx.Headers([("A", "1"), ("A", "4")])]
    for original in originals:
        duplicate = copy_headers(original)
        assert type(duplicate) is type(original) and duplicate is not original
        assert list(duplicate.items()) == list(original.items())
        duplicate["traceparent"] = "x"
        assert "traceparent" not in original
    assert list(copy_headers(repeated).items()) == [("A", "1"), ("A", "4")]
    assert copy_headers(types.MappingProxyType({"A": "1"})) is None


def test_headers_that_cannot_be_copied_go_out_as_given(raw_server, exported):
    import types

    http_client = instrumented("http.client")
    raw_server.received.clear()
    with request_span():
        connection = http_client.HTTPConnection(*raw_server.server_address)
        connection.request("GET", "/read-only", headers=types.MappingProxyType({"X-Mine": "1"}))
        assert connection.getresponse().read() == b"ok"
        connection.close()
    _, lines = raw_server.received[0]
    assert "X-Mine: 1" in lines and not [line for line in lines if line.startswith("traceparent")]
    assert len(exported.calls()) == 1  # the call is still traced
