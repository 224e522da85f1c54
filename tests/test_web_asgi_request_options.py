"""spyglass.set_request_options under ASGI (FastAPI, async and sync endpoints), with head
sampling at 0 and logging_on_error: what each option changes at a real OTLP receiver."""
import pytest

from support.web import drive

DRIVER = """
    import asyncio, json
    import httpx
    import spyglass
    from fastapi_controls_app import app

    print(json.dumps({"outside a request": spyglass.set_request_options(view_name="x")}))
    try:
        spyglass.set_request_options(colour="blue")
    except TypeError as exc:
        print(json.dumps({"unknown option": str(exc)}))

    async def main():
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for path in ["/ok", "/ok?force=1", "/fail", "/sync-fail", "/ignored", "/slow",
                         "/slow?ignore=1", "/log", "/log?force=1"]:
                response = await client.get(path)
                print(json.dumps({"path": path, "status": response.status_code}))
    asyncio.run(main())
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, bootstrap="fastapi", SPYGLASS_SAMPLE_RATE="0",
                 SPYGLASS_SLOW_REQUEST_TIME="0.2", SPYGLASS_LOGGING_ON_ERROR="true")


def test_outside_a_request_and_unknown_options(run):
    assert run.outputs[0] == {"outside a request": False}
    assert "colour" in run.outputs[1]["unknown option"]
    statuses = [o["status"] for o in run.outputs[2:]]
    assert statuses == [200, 200, 500, 500, 500, 200, 200, 200, 200]


def test_only_forced_errored_and_slow_requests_are_exported(run):
    # The requests' spans (the driver's own httpx calls that failed are traces of their own).
    names = sorted(span["name"] for span in run.spans() if span["kind"] == 2)
    # Not the ignored error's (it is no error now), nor the slow one under ignore_slow.
    assert names == ["GET /fail", "GET /slow", "GET forced-view", "GET sync-view"]
    assert run.span("GET forced-view")["attrs"]["spyglass.sampled"] is False
    assert run.span("GET /slow")["attrs"]["spyglass.slow"] is True


def test_error_options(run):
    errors = {e["message"]: e for e in run.errors()}
    assert set(errors) == {"async failure 42", "sync failure"}  # not the ignored one
    failure = errors["async failure 42"]
    assert failure["user"] == {"id": "u-asgi"}
    assert run.span("GET /fail")["attrs"]["enduser.id"] == "u-asgi"
    assert failure["contexts"]["report"] == {"message": "asgi message"}
    assert failure["fingerprint"] == errors["sync failure"]["fingerprint"]
    frame = [f for f in failure["frames"] if f["function"] == "fail"][0]
    assert frame["vars"]["order_total"] == "42"
    assert errors["sync failure"]["_attrs"]["http.route"] == "sync-view"
    assert "client_address" not in failure["request"]


def test_force_logs_under_logging_on_error(run):
    bodies = [r["body"]["stringValue"] for r in run.logs()]
    assert "asgi warning force=True" in bodies
    assert "asgi warning force=False" not in bodies
    assert run.receiver.schema_errors == []
