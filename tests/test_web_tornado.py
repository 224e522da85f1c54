"""Tornado, server and AsyncHTTPClient, under AUTOWRAPT_BOOTSTRAP: a driver serving the app
on a real socket and fetching from it, run plain and under the sensor; then a Tornado
service calling an aiohttp service, each its own process: one trace across both."""
import json
import signal
import sys

import httpx
import pytest

from support.services import postgres_dsn
from support.web import assert_no_route, drive, echoed_as_plain, serve

pytest.importorskip("tornado")

DRIVER = """
    import asyncio, json
    import opentracing
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
    from tornado.httputil import HTTPHeaders
    from tornado_app import make_app
    from echoed import show

    async def client_calls(base, inside):
        client = AsyncHTTPClient()
        repeated = HTTPHeaders()
        repeated.add("X-Rep", "1")
        repeated.add("X-Rep", "2")
        given = {"dict": {"X-One": "1"}, "httpheaders": repeated, "none": None,
                 "own": {"TraceParent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}}
        for name, headers in given.items():
            response = await client.fetch(base + "/echo", headers=headers)
            show(name, inside, json.loads(response.body),
                 sorted(headers.get_all()) if isinstance(headers, HTTPHeaders) else headers)
        request = HTTPRequest(base + "/echo?token=tok-SECRET-6", headers={"X-Req": "1"})
        for name in ("first", "second"):  # one request object, fetched twice
            response = await client.fetch(request)
            show(name, inside, json.loads(response.body),
                 sorted(pair for pair in request.headers.get_all() if pair[0] != "Host"))
            assert response.request is request
        try:
            await client.fetch(base + "/boom")
        except HTTPClientError as error:
            print(json.dumps({"raised": type(error).__name__, "code": error.code}))
        try:
            await client.fetch("http://127.0.0.1:9/")
        except Exception as error:
            print(json.dumps({"raised": type(error).__name__}))
        response = await client.fetch(base + "/missing", raise_error=False)
        print(json.dumps({"code": response.code}))
        try:  # refused by fetch: an HTTPRequest and keywords
            await client.fetch(HTTPRequest(base + "/echo"), method="GET")
        except ValueError as error:
            print(json.dumps({"raised": type(error).__name__}))

    async def main():
        app = make_app()
        server = app.listen(0, "127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        base = "http://127.0.0.1:%d" % port
        client = AsyncHTTPClient()
        for path in ["/users/7?token=tok-SECRET-1", "/boom", "/missing", "/call", "/nowhere",
                     "/subscribe"]:
            response = await client.fetch(base + path, raise_error=False,
                                          headers={"Authorization": "Bearer auth-SECRET-2"})
            print(json.dumps({"path": path, "status": response.code}))
        await client_calls(base, False)
        with opentracing.tracer.start_active_span("outer"):
            await client_calls(base, True)
        server.stop()

    asyncio.run(main())

    # The blocking HTTPClient runs fetch on a loop of its own: against a server in a thread.
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from tornado.httpclient import HTTPClient

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(list(self.headers.items())).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = HTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.handle_request).start()
    with opentracing.tracer.start_active_span("blocking"):
        response = HTTPClient().fetch("http://127.0.0.1:%d/" % httpd.server_address[1])
    show("blocking", True, json.loads(response.body))
    httpd.server_close()
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, bootstrap="spyglass")


@pytest.fixture(scope="module")
def plain():
    return drive(DRIVER, bootstrap=None)


def test_requests_are_server_spans_named_by_the_url_spec(run):
    spans = run.server_spans()
    user = spans["GET /users/([0-9]+)"]
    assert user["attrs"]["http.route"] == "/users/([0-9]+)"
    assert user["attrs"]["http.response.status_code"] == 200
    assert user["attrs"]["url.path"] == "/users/7"
    assert user["attrs"]["url.scheme"] == "http"
    assert user["attrs"]["server.address"] == "127.0.0.1"
    missing = spans["GET /missing"]
    assert missing["attrs"]["http.response.status_code"] == 404
    assert missing.get("status", {}).get("code", 0) == 0
    assert run.receiver.schema_errors == []


def test_a_request_no_url_spec_matched_is_named_by_its_method_without_a_route(run):
    assert_no_route(run.spans(), "/nowhere", 404)
    # Tornado's URL specs do not match methods: a 405 comes from the handler of the spec
    # that matched, and the request is named by it.
    subscribe = run.span("GET /subscribe")
    assert subscribe["attrs"]["http.route"] == "/subscribe"
    assert subscribe["attrs"]["http.response.status_code"] == 405


def test_a_handlers_exception_marks_its_span_and_is_reported_once(run):
    boom = [s for s in run.spans() if s["name"] == "GET /boom"]
    assert len(boom) == 3 and all(s["status"]["code"] == 2 for s in boom)
    assert all(s["attrs"]["http.response.status_code"] == 500 for s in boom)
    errors = [e for e in run.errors() if e["type"] == "ZeroDivisionError"]
    assert len(errors) == 3
    assert {e["_record"]["spanId"] for e in errors} == {s["spanId"] for s in boom}
    assert errors[0]["request"]["route"] == "/boom"


def test_one_trace_across_a_fetch_to_another_request(run):
    spans = run.spans()
    call, = [s for s in spans if s["name"] == "GET /call"]
    client, = [s for s in spans if s["kind"] == 3 and s.get("parentSpanId") == call["spanId"]]
    assert client["attrs"]["url.full"].endswith("/echo?token=[Filtered]")
    assert client["attrs"]["http.response.status_code"] == 200
    echo, = [s for s in spans if s["name"] == "GET /echo"
             and s.get("parentSpanId") == client["spanId"]]
    assert echo["traceId"] == client["traceId"] == call["traceId"]


def test_the_client_sends_the_apps_headers_plus_the_context_and_leaves_its_objects(run, plain):
    by_name = echoed_as_plain(run, plain)
    assert ["X-Rep", "1"] in by_name[("httpheaders", True)]["sent"]
    assert ["X-Rep", "2"] in by_name[("httpheaders", True)]["sent"]
    for (name, inside), output in by_name.items():
        if name == "own":
            assert output["trace"] == {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        else:
            assert ("traceparent" in output["trace"]) is inside, (name, inside)
    blocking, = [s for s in run.spans() if s["name"] == "blocking"]
    client, = [s for s in run.spans() if s.get("parentSpanId") == blocking["spanId"]]
    assert by_name[("blocking", True)]["trace"]["traceparent"].split("-")[2] == client["spanId"]
    # each fetch of one request object carries its own context
    assert by_name[("first", True)]["trace"] != by_name[("second", True)]["trace"]


def test_the_clients_results_and_exceptions_are_unchanged(run, plain):
    outcomes = [o for o in run.outputs if "raised" in o or "code" in o or "path" in o]
    assert outcomes == [o for o in plain.outputs if "raised" in o or "code" in o or "path" in o]
    assert {"raised": "HTTPClientError", "code": 500} in outcomes
    assert {"raised": "ConnectionRefusedError"} in outcomes
    assert {"raised": "ValueError"} in outcomes
    outer, = [s for s in run.spans() if s["name"] == "outer"]
    clients = [s for s in run.spans() if s["kind"] == 3 and s["traceId"] == outer["traceId"]]
    assert len(clients) == 9  # four header kinds, one request twice, boom, refused, missing
    failed = sorted(s["attrs"].get("error.type", "") for s in clients
                    if s.get("status", {}).get("code") == 2)
    assert failed == ["ConnectionRefusedError", "HTTPClientError"]


def test_secrets_are_scrubbed(run):
    text = run.receiver.raw_text()
    for secret in ("tok-SECRET-1", "auth-SECRET-2", "tok-SECRET-5", "tok-SECRET-6"):
        assert secret not in text


def test_a_tornado_service_calling_an_aiohttp_service_is_one_trace(receiver):
    pytest.importorskip("aiohttp")
    aiohttp_service, aiohttp_base = serve(receiver, [sys.executable, "aiohttp_app.py", "{port}"],
                                          SPYGLASS_SERVICE_NAME="inventory")
    tornado_service, tornado_base = serve(receiver, [sys.executable, "tornado_app.py", "{port}"],
                                          SPYGLASS_SERVICE_NAME="shop",
                                          CALL_URL=aiohttp_base + "/echo")
    try:
        echoed = dict(map(tuple, httpx.get(tornado_base + "/call").json()))
        spans = receiver.wait_for(lambda r: len(r.spans()) >= 3 and r.spans())
    finally:
        for process in (tornado_service, aiohttp_service):
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=20)[0]
            assert process.returncode in (0, -signal.SIGTERM), output
    call, = [s for s in spans if s["name"] == "GET /call"]
    client, = [s for s in spans if s["kind"] == 3]
    echo, = [s for s in spans if s["name"] == "GET /echo"]
    assert call["resource"]["service.name"] == client["resource"]["service.name"] == "shop"
    assert echo["resource"]["service.name"] == "inventory"
    assert client["parentSpanId"] == call["spanId"] and echo["parentSpanId"] == client["spanId"]
    assert call["traceId"] == client["traceId"] == echo["traceId"]
    assert echoed["X-App"] == "1"
    assert echoed["traceparent"] == f"00-{call['traceId']}-{client['spanId']}-03"
    assert receiver.schema_errors == []


def test_tornado_calling_aiohttp_on_asyncpg_and_pymemcache_is_one_trace(receiver, memcached):
    """Issue 18's showcase: each service started with only AUTOWRAPT_BOOTSTRAP; one trace
    across both, with the SQL and the cache calls inside the aiohttp request."""
    pytest.importorskip("aiohttp")
    pytest.importorskip("asyncpg")
    pytest.importorskip("pymemcache")
    postgres = postgres_dsn()
    aiohttp_service, aiohttp_base = serve(
        receiver, [sys.executable, "aiohttp_app.py", "{port}"], SPYGLASS_SERVICE_NAME="inventory",
        INVENTORY_POSTGRES=f"{postgres['host']}:{postgres['port']}:{postgres['user']}",
        INVENTORY_MEMCACHED="%s:%d" % tuple(memcached),
        # every call a span: none is folded or dropped as too short
        SPYGLASS_SPAN_MIN_DURATION="0", SPYGLASS_COMPRESS_REPEATED_CALLS="false")
    tornado_service, tornado_base = serve(receiver, [sys.executable, "tornado_app.py", "{port}"],
                                          SPYGLASS_SERVICE_NAME="shop",
                                          CALL_URL=aiohttp_base + "/inventory")
    try:
        assert httpx.get(tornado_base + "/call").json() == {"count": 1, "stock": "7"}
        spans = receiver.wait_for(lambda r: {s["name"] for s in r.spans()} >= {
            "GET /call", "GET /inventory"} and r.spans())
    finally:
        for process in (tornado_service, aiohttp_service):
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=20)[0]
            assert process.returncode in (0, -signal.SIGTERM), output
    call, = [s for s in spans if s["name"] == "GET /call"]
    inventory, = [s for s in spans if s["name"] == "GET /inventory"]
    inside = [s for s in spans if s["traceId"] == call["traceId"]
              and s["resource"]["service.name"] == "inventory" and s is not inventory]
    systems = {s["attrs"].get("db.system.name") or s["attrs"].get("db.system") for s in inside}
    assert {"postgresql", "memcached"} <= systems, [(s["name"], s["attrs"]) for s in inside]
    assert inventory["traceId"] == call["traceId"]
    assert call["resource"]["service.name"] == "shop"
    assert receiver.schema_errors == []

