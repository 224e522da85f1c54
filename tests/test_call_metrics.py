"""Outbound HTTP, Solr and template renders feed the duration metrics, inside a trace and
outside any (issue 14, point 1): ``http.client.request.duration`` (method, server, status
class; never the path), ``db.client.operation.duration`` with ``db.system`` solr and the
request handler, ``spyglass.template.render.duration`` by engine.

Real parts: a local HTTP server answering as Solr does (tests/test_instrument_solr.py's),
the real clients (http.client, urllib3, requests, httpx, aiohttp) and template engines, a
real sensor exporting to the OTLP receiver of tests/support.
"""
import importlib.util
import json

from support.processes import run_python
from support.servers import histogram_count
from test_instrument_solr import solr_url  # noqa: F401 (a fixture: the server, Solr's way)

# Each call twice: once outside any trace, once inside a trace (a background task's).
SCRIPT = """
    import asyncio, json, sys, urllib.request
    import spyglass

    URL = {url!r}
    clients = {clients!r}

    def calls():
        urllib.request.urlopen(URL + "/solr/products/select?q=a").read()
        try:
            urllib.request.urlopen(URL + "/missing/secret-path")
        except urllib.error.HTTPError:
            pass
        if "urllib3" in clients:
            import urllib3
            urllib3.PoolManager().request("GET", URL + "/solr/products/select?q=b")
        if "requests" in clients:
            import requests
            requests.get(URL + "/solr/products/select?q=c")
        if "httpx" in clients:
            import httpx
            httpx.get(URL + "/solr/products/select?q=d")
        if "aiohttp" in clients:
            import aiohttp

            async def get():
                async with aiohttp.ClientSession() as session:
                    async with session.get(URL + "/solr/products/select?q=e") as response:
                        await response.read()
            asyncio.run(get())
        if "pysolr" in clients:
            import pysolr
            solr = pysolr.Solr(URL + "/solr/products")
            solr.search("title:spyglass")
            solr.add([{{"id": "3"}}], commit=True)
        if "jinja2" in clients:
            import jinja2
            jinja2.Template("{{{{ who }}}}").render(who="you")
        if "mako" in clients:
            from mako.template import Template
            Template("${{who}}").render(who="you")

    calls()
    with spyglass.background_task("inside"):
        calls()
    print("done")
"""

CLIENTS = ("urllib3", "requests", "httpx", "aiohttp", "pysolr", "jinja2", "mako")


def installed():
    return [name for name in CLIENTS if importlib.util.find_spec(name) is not None]


def test_http_solr_and_templates_feed_the_metrics_inside_and_outside_a_trace(
        receiver, solr_url):  # noqa: F811
    server_url = solr_url.rsplit("/solr/", 1)[0]
    clients = installed()
    result = run_python(SCRIPT.format(url=server_url, clients=clients),
                        AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
                        SPYGLASS_METRICS_INTERVAL="1")
    assert result.stdout.split() == ["done"], result.stderr
    port = int(server_url.rsplit(":", 1)[1])
    http_clients = 1 + len({"urllib3", "requests", "httpx", "aiohttp"} & set(clients))
    server = {"server.address": "127.0.0.1", "server.port": port}

    def counted(receiver):
        return histogram_count(receiver, "http.client.request.duration",
                               **{"http.request.method": "GET", **server,
                                  "http.response.status_class": "2xx"}) >= 2 * http_clients

    assert receiver.wait_for(counted, timeout=20), json.dumps(receiver.metrics())[:3000]
    # Once outside, once inside: each client counted twice, no more (no request counted
    # again by the library it runs on).
    assert histogram_count(receiver, "http.client.request.duration",
                           **{"http.response.status_class": "2xx"}) == 2 * http_clients
    assert histogram_count(receiver, "http.client.request.duration",
                           **{"http.response.status_class": "4xx", **server}) == 2
    client_metrics = [m for m in receiver.metrics() if m["name"] == "http.client.request.duration"]
    assert {m["unit"] for m in client_metrics} == {"s"}
    # Never the URL, its path or query: only the bounded attributes.
    for metric in client_metrics:
        for point in metric["histogram"]["dataPoints"]:
            assert "secret-path" not in json.dumps(point["attributes"])
            names = {attribute["key"] for attribute in point["attributes"]}
            assert names <= {"http.request.method", "server.address", "server.port",
                             "http.response.status_class", "error.type"}, names
    if "pysolr" in clients:
        assert receiver.wait_for(lambda r: histogram_count(
            r, "db.client.operation.duration", **{"db.system": "solr",
                                                  "db.operation.name": "select"}) >= 2)
        assert histogram_count(receiver, "db.client.operation.duration",
                               **{"db.system": "solr", "db.operation.name": "update"}) == 2
    for engine in {"jinja2", "mako"} & set(clients):
        assert receiver.wait_for(lambda r: histogram_count(
            r, "spyglass.template.render.duration", **{"spyglass.template.engine": engine})
            >= 2), engine
        assert histogram_count(receiver, "spyglass.template.render.duration",
                               **{"spyglass.template.engine": engine}) == 2
    # The calls inside the trace are its spans; those outside made none (fast, succeeded;
    # the 404 inside marks its own span).
    spans = receiver.wait_for(lambda r: r.spans())
    assert {span["name"] for span in spans if not span.get("parentSpanId")} == {"inside"}


def test_a_request_that_gets_no_response_is_counted_with_its_error_type(receiver):
    result = run_python("""
        import urllib.request
        try:
            urllib.request.urlopen("http://127.0.0.1:9/nothing", timeout=5)
        except OSError as error:
            print(type(error).__name__)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.strip() == "URLError"
    assert receiver.wait_for(lambda r: histogram_count(
        r, "http.client.request.duration", **{"server.port": 9,
                                              "error.type": "ConnectionRefusedError"}) == 1)


def test_a_5xx_outside_any_trace_is_named_by_its_status(receiver):
    result = run_python("""
        import http.server, threading, urllib.request

        class Unavailable(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_error(503)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/busy")
        except urllib.error.HTTPError as error:
            print(error.code)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.strip() == "503", result.stderr
    assert receiver.wait_for(lambda r: histogram_count(
        r, "http.client.request.duration", **{"http.response.status_class": "5xx",
                                              "error.type": "503"}) == 1)
    # Failed, so a trace of its own, its span saying why as OpenTelemetry does.
    span, = receiver.wait_for(lambda r: r.spans())
    assert "parentSpanId" not in span or not span["parentSpanId"]
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["error.type"] == {"stringValue": "503"}
    assert span["status"]["code"] == 2
