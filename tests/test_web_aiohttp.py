"""aiohttp, server and client, under AUTOWRAPT_BOOTSTRAP: in a driver that serves the app on
a real socket (AppRunner) and calls it with ClientSession, run plain and under the sensor;
then the app as it is deployed, under ``web.run_app`` and ``gunicorn -k
aiohttp.GunicornWebWorker``, with real HTTP in and real OTLP out."""
import json
from unittest.mock import ANY
import signal
import sys

import httpx
import pytest

from support.services import require_installed
from support.web import assert_no_route, drive, echoed_as_plain, serve

pytest.importorskip("aiohttp")

DRIVER = """
    import asyncio, json
    import aiohttp, opentracing
    from aiohttp import web
    from multidict import CIMultiDict, MultiDict
    from aiohttp_app import app
    from echoed import show

    async def client_calls(base, inside):
        repeated = CIMultiDict([("X-Rep", "1"), ("x-rep", "2")])
        plain = MultiDict([("X-Case", "a"), ("x-case", "b")])
        given = {"dict": {"X-One": "1"}, "pairs": [("X-Rep", "1"), ("X-Rep", "2")],
                 "cimultidict": repeated, "multidict": plain, "none": None,
                 "own-traceparent": {"TraceParent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}}
        async with aiohttp.ClientSession(headers={"X-Session": "s"}) as session:
            for name, headers in given.items():
                async with session.get(base + "/echo", headers=headers) as response:
                    show(name, inside, await response.json(), repr(headers))
                    assert type(response) is aiohttp.ClientResponse
            async with session.request("GET", base + "/echo?token=tok-SECRET-4") as response:
                show("request", inside, await response.json())
            try:
                await session.get(base + "/boom", raise_for_status=True)
            except aiohttp.ClientResponseError as error:
                print(json.dumps({"raised": type(error).__name__, "status": error.status}))
            try:
                await session.get("http://127.0.0.1:9/")
            except Exception as error:
                print(json.dumps({"raised": type(error).__name__,
                                  "connector": isinstance(error, aiohttp.ClientConnectorError)}))
        async with aiohttp.request("GET", base + "/echo") as response:
            show("aiohttp.request", inside, await response.json())

    async def main():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = "http://127.0.0.1:%d" % runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            for path in ["/users/7?token=tok-SECRET-1", "/boom", "/missing", "/api/items/x",
                         "/call", "/nowhere", "/static/echoed.py", "/subscribe"]:
                async with session.get(base + path,
                                       headers={"Authorization": "Bearer auth-SECRET-2"}) as r:
                    print(json.dumps({"path": path, "status": r.status, "body": await r.text()}))
        await client_calls(base, False)
        with opentracing.tracer.start_active_span("outer"):
            await client_calls(base, True)
        await runner.cleanup()

    asyncio.run(main())
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, bootstrap="spyglass")


@pytest.fixture(scope="module")
def plain():
    return drive(DRIVER, bootstrap=None)


def test_requests_are_server_spans_named_by_the_route_template(run):
    spans = run.server_spans()
    user = spans["GET /users/{id}"]
    assert user["attrs"]["http.route"] == "/users/{id}"
    assert user["attrs"]["http.response.status_code"] == 200
    assert user["attrs"]["url.path"] == "/users/7"
    assert user["attrs"]["server.address"] == "127.0.0.1"
    assert user["attrs"]["user_agent.original"].startswith("Python/")
    assert spans["GET /api/items/{item}"]["attrs"]["http.response.status_code"] == 200
    assert spans["GET /static/{filename}"]["attrs"]["http.response.status_code"] == 200
    missing = spans["GET /missing"]
    assert missing["attrs"]["http.response.status_code"] == 404
    assert missing.get("status", {}).get("code", 0) == 0
    assert run.receiver.schema_errors == []


def test_requests_no_route_matched_are_named_by_their_method_without_a_route(run):
    assert_no_route(run.spans(), "/nowhere", 404)
    assert_no_route(run.spans(), "/subscribe", 405)  # the route is POST's


def test_a_handlers_exception_marks_its_span_and_is_reported_once(run):
    boom = run.server_spans()["GET /boom"]
    assert boom["status"]["code"] == 2
    assert boom["attrs"]["http.response.status_code"] == 500
    assert [e for e in boom["events"] if e["name"] == "exception"]
    errors = [e for e in run.errors() if e["type"] == "ZeroDivisionError"]
    assert len(errors) == 3  # /boom was asked for three times: each once
    assert boom["spanId"] in {e["_record"]["spanId"] for e in errors}
    assert errors[0]["request"]["route"] == "/boom"


def test_one_trace_across_a_client_call_to_another_request(run):
    spans = run.spans()
    call, = [s for s in spans if s["name"] == "GET /call"]
    client, = [s for s in spans if s["kind"] == 3 and s.get("parentSpanId") == call["spanId"]]
    assert client["traceId"] == call["traceId"] and client["name"] == "GET"
    assert client["attrs"]["url.full"].endswith("/echo?token=[Filtered]")
    assert client["attrs"]["http.response.status_code"] == 200
    assert client["attrs"]["spyglass.category"] == "remote"
    echo, = [s for s in spans if s["name"] == "GET /echo" and s.get("parentSpanId") == client["spanId"]]
    assert echo["traceId"] == call["traceId"]
    answered, = [o for o in run.outputs if o.get("path") == "/call"]
    echoed = dict(map(tuple, json.loads(answered["body"])))
    assert echoed["traceparent"] == f"00-{call['traceId']}-{client['spanId']}-03"


def test_the_client_sends_the_apps_headers_as_given_plus_the_context_inside_a_span(run, plain):
    by_name = echoed_as_plain(run, plain)
    assert ["X-Rep", "1"] in by_name[("pairs", True)]["sent"]
    assert ["X-Rep", "2"] in by_name[("pairs", True)]["sent"]
    assert ["X-Session", "s"] in by_name[("none", True)]["sent"]
    for (name, inside), output in by_name.items():
        if name == "own-traceparent":
            assert output["trace"] == {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        elif name != "aiohttp.request" or inside:
            assert ("traceparent" in output["trace"]) is inside, (name, inside)


def test_the_clients_results_and_exceptions_are_unchanged(run, plain):
    raised = [o for o in run.outputs if "raised" in o]
    assert raised == [o for o in plain.outputs if "raised" in o]
    assert {"raised": "ClientResponseError", "status": 500} in raised
    assert {"raised": "ClientConnectorError", "connector": True} in raised
    # what the server answered (/call echoes a traceparent, and a port: shown above)
    answered = [o for o in run.outputs if "path" in o and o["path"] != "/call"]
    assert answered == [o for o in plain.outputs if "path" in o and o["path"] != "/call"]


def test_client_spans_inside_a_span_and_failed_calls_outside_as_their_own_traces(run):
    outer, = [s for s in run.spans() if s["name"] == "outer"]
    clients = [s for s in run.spans() if s["kind"] == 3 and s["traceId"] == outer["traceId"]]
    assert len(clients) == 10  # six header kinds, request, raise_for_status, refused, aiohttp.request
    failed = [s for s in clients if s.get("status", {}).get("code") == 2]
    assert sorted(s["attrs"].get("error.type", "") for s in failed) == [
        "ClientConnectorError", "ClientResponseError"]
    outside = [s for s in run.spans() if s["kind"] == 3 and s["traceId"] != outer["traceId"]]
    assert [s["parentSpanId"] for s in outside if s.get("parentSpanId")] == [
        s["spanId"] for s in run.spans() if s["name"] == "GET /call"]
    # Outside any trace a call is kept only when it failed (or was slow): a trace of its own.
    roots = [s for s in outside if not s.get("parentSpanId")]
    assert all(s.get("status", {}).get("code") == 2 or s["attrs"].get("spyglass.slow") for s in roots)
    assert sorted((s["attrs"].get("error.type"), s["status"]["message"]) for s in roots
                  if s.get("status", {}).get("code") == 2) == [
        ("500", "HTTP 500"), ("ClientConnectorError", ANY), ("ClientResponseError", ANY)]


def test_secrets_are_scrubbed(run):
    text = run.receiver.raw_text()
    for secret in ("tok-SECRET-1", "auth-SECRET-2", "tok-SECRET-3", "tok-SECRET-4"):
        assert secret not in text


def check_served(receiver, base):
    assert httpx.get(base + "/users/3").json() == {"id": 3}
    assert httpx.get(base + "/boom").status_code == 500
    echoed = dict(map(tuple, httpx.get(base + "/call").json()))
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 5 and r.spans())
    names = sorted(s["name"] for s in spans)
    assert names == ["GET", "GET /boom", "GET /call", "GET /echo", "GET /users/{id}"], names
    call, = [s for s in spans if s["name"] == "GET /call"]
    assert {s["traceId"] for s in spans if s["name"] in ("GET", "GET /echo")} == {call["traceId"]}
    assert echoed["traceparent"].split("-")[1] == call["traceId"]
    errors = receiver.wait_for(lambda r: [x for x in r.log_records()
                                          if x["attrs"].get("event.name") == "spyglass.error"])
    assert len(errors) == 1
    assert receiver.schema_errors == []


def stop(process, signum):
    process.send_signal(signum)
    output = process.communicate(timeout=20)[0]
    return process.returncode, output


def test_under_web_run_app(receiver):
    process, base = serve(receiver, [sys.executable, "aiohttp_app.py", "{port}"])
    try:
        check_served(receiver, base)
    finally:
        returncode, output = stop(process, signal.SIGINT)
    assert returncode == 0, output


def test_under_gunicorn_aiohttp_worker(receiver):
    require_installed("gunicorn")
    process, base = serve(receiver, [sys.executable, "-m", "gunicorn", "-w", "1", "-b",
                                     "127.0.0.1:{port}", "-k", "aiohttp.GunicornWebWorker",
                                     "aiohttp_app:app"])
    try:
        check_served(receiver, base)
    finally:
        returncode, output = stop(process, signal.SIGTERM)
    assert returncode == 0, output
