"""The capture API, scopes, before_send, the plain WSGI middleware with its environ
controls, and logging's trace ids: in a real interpreter under the sensor."""
from support.web import drive

DRIVER = """
    import asyncio, json, logging, threading
    from wsgiref.util import setup_testing_defaults
    import spyglass, spyglass.wsgi

    logging.getLogger("spyglass").addHandler(logging.StreamHandler())  # the app shows ours
    spyglass.set_tag("release-train", "blue")
    with spyglass.scope():
        spyglass.set_user({"id": 7, "email": "eve@example.com"})
        spyglass.set_context("order", {"id": 99, "card_number": "4111 1111 1111 1111"})
        spyglass.add_breadcrumb("clicked pay", category="ui")
        try:
            {}["k"]
        except KeyError:
            spyglass.capture_exception(tags={"step": "pay"}, fingerprint=["payments"])
    spyglass.capture_message("after the scope", level="warning")

    def in_thread():
        with spyglass.scope():
            spyglass.set_tag("thread", "yes")
            spyglass.capture_message("from a thread")
    thread = threading.Thread(target=in_thread); thread.start(); thread.join()

    async def task(n):
        with spyglass.scope():
            spyglass.set_tag("task", n)
            await asyncio.sleep(0)
            spyglass.capture_message(f"task {n}")
    async def tasks():
        await asyncio.gather(task(1), task(2))
    asyncio.run(tasks())

    spyglass.set_before_send(lambda event: None if "drop me" in event["message"] else event)
    spyglass.capture_message("drop me")
    def broken(event):
        event["message"] = "changed"
        raise RuntimeError("filter bug")
    spyglass.set_before_send(broken)
    spyglass.capture_message("kept unchanged")
    spyglass.capture_message("kept unchanged again")
    spyglass.set_before_send(None)

    def app(environ, start_response):
        environ["spyglass.view_name"] = "checkout"
        environ["spyglass.username"] = "u-5"
        logging.getLogger("shop").warning("checking out")
        if environ["PATH_INFO"] == "/fail":
            environ["spyglass.group_string"] = "checkout-failures"
            raise LookupError("no stock")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"ok"])
    traced = spyglass.wsgi.middleware(app)
    for path in ("/ok", "/fail"):
        environ = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        statuses = []
        try:
            body = b"".join(traced(environ, lambda s, h, e=None: statuses.append(s)))
        except LookupError:
            body = b"raised"
        print(json.dumps({"path": path, "body": body.decode(), "status": statuses}))

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    logging.getLogger("x").handle(record)
    print(json.dumps({"trace_id": record.trace_id, "span_id": record.span_id}))
"""


def test_capture_api_scopes_filters_and_wsgi_middleware():
    run = drive(DRIVER, bootstrap="runtime")
    errors = run.errors()
    by_message = {e["message"]: e for e in errors}

    key_error = by_message["'k'"]
    assert key_error["handled"] is True
    assert key_error["user"] == {"id": "7"}  # id only without send_default_pii
    assert key_error["tags"] == {"release-train": "blue", "step": "pay"}
    assert key_error["contexts"]["order"]["card_number"] == "[Filtered]"
    assert key_error["breadcrumbs"][-1]["message"] == "clicked pay"
    custom = key_error["fingerprint"]

    after = by_message["after the scope"]
    assert "user" not in after and "contexts" not in after  # the scope's changes stayed inside
    assert after["tags"] == {"release-train": "blue"}
    assert after["_record"]["severityText"] == "WARNING"
    assert by_message["from a thread"]["tags"]["thread"] == "yes"
    assert by_message["task 1"]["tags"]["task"] == 1 and by_message["task 2"]["tags"]["task"] == 2

    assert "drop me" not in by_message
    assert "kept unchanged" in by_message and "kept unchanged again" in by_message
    assert "changed" not in by_message
    assert run.stderr.count("raised; events are sent unfiltered") == 1  # logged once

    assert run.outputs[0] == {"path": "/ok", "body": "ok", "status": ["200 OK"]}
    assert run.outputs[1]["body"] == "raised"
    spans = {s["attrs"]["url.path"]: s for s in run.spans()}
    assert spans["/ok"]["name"] == "GET checkout"
    assert spans["/ok"]["attrs"]["enduser.id"] == "u-5"
    assert spans["/fail"]["status"]["code"] == 2
    failure = by_message["no stock"]
    assert failure["handled"] is False and failure["user"] == {"id": "u-5"}
    warnings = [r for r in run.logs() if r["body"]["stringValue"] == "checking out"]
    assert {w["spanId"] for w in warnings} == {spans["/ok"]["spanId"], spans["/fail"]["spanId"]}
    assert custom != failure["fingerprint"]
    assert run.outputs[2] == {"trace_id": "0" * 32, "span_id": "0" * 16}
    assert run.receiver.schema_errors == []
