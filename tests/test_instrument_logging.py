"""stdlib logging under the sensor: records at or above logging_level become OTLP log
records tied to their request's span, held back under logging_on_error until the request
errs or is slow (or force_logs says otherwise); every record carries trace_id/span_id for
the app's formatters; spyglass's own records never feed back."""
import pytest

from support.web import drive

DRIVER = """
    import json, logging
    from flask_controls_app import app

    seen = []
    class Keep(logging.Handler):
        def emit(self, record):
            seen.append({"message": record.getMessage(), "trace_id": record.trace_id,
                         "span_id": record.span_id})
    shop = logging.getLogger("shop")
    shop.addHandler(Keep())
    shop.setLevel(logging.DEBUG)

    client = app.test_client()
    def go(path, **controls):
        environ = {"spyglass." + key: value for key, value in controls.items()}
        response = client.get(path, environ_overrides=environ)
        response.close()
        print(json.dumps({"path": path, "status": response.status_code}))

    go("/log?n=quiet")
    go("/log?n=forced", force_logs="1")
    go("/log?n=failed&fail=1")
    go("/log?n=slow&s=0.25")
    shop.warning("outside any request")
    logging.getLogger("spyglass").error("the sensor's own error")
    logging.getLogger("spyglass.report").warning("the sensor's own warning")
    print(json.dumps({"seen": seen}))
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, SPYGLASS_LOGGING_ON_ERROR="true", SPYGLASS_LOGGING_LEVEL="INFO",
                 SPYGLASS_SLOW_REQUEST_TIME="0.2")


def bodies(run):
    return [r["body"]["stringValue"] for r in run.logs()]


def test_logging_on_error_holds_a_request_s_records_back(run):
    sent = bodies(run)
    assert not [b for b in sent if "quiet" in b]  # neither errored nor slow: dropped
    for n in ("forced", "failed", "slow"):
        assert f"info line {n}" in sent and f"warning line {n}" in sent
    assert not [b for b in sent if "debug line" in b]  # below logging_level
    assert "outside any request" in sent  # no request: nothing to wait for


def test_records_are_tied_to_their_request_s_span(run):
    spans = {s["spanId"]: s for s in run.spans()}
    for record in run.logs():
        body = record["body"]["stringValue"]
        if "line failed" in body or "line slow" in body:
            assert spans[record["spanId"]]["traceId"] == record["traceId"]
            assert record["attrs"]["log.logger"] == "shop"
    outside, = [r for r in run.logs() if r["body"]["stringValue"] == "outside any request"]
    assert "traceId" not in outside or set(outside["traceId"]) == {"0"}


def test_log_records_carry_trace_ids_for_the_app_s_formatters(run):
    seen = run.outputs[-1]["seen"]
    spans = {s["spanId"]: s for s in run.spans()}
    failed = [r for r in seen if r["message"] == "warning line failed"][0]
    assert spans[failed["span_id"]]["traceId"] == failed["trace_id"]
    quiet = [r for r in seen if r["message"] == "warning line quiet"][0]
    assert quiet["trace_id"] != "0" * 32  # dropped from export, still traced
    outside = [r for r in seen if r["message"] == "outside any request"][0]
    assert (outside["trace_id"], outside["span_id"]) == ("0" * 32, "0" * 16)


def test_exc_info_records_become_one_error_event(run):
    errors = [e for e in run.errors() if e["type"] == "KeyError"]
    assert len(errors) == 1 and errors[0]["handled"] is False  # Flask logs it too: once
    assert errors[0]["breadcrumbs"][-1]["message"] == "warning line failed"


def test_the_sensor_never_feeds_on_its_own_records(run):
    text = run.receiver.raw_text()
    assert "the sensor's own" not in text
    assert "the sensor's own error" in run.stderr  # still printed, as logging would
    assert run.receiver.schema_errors == []


def test_what_libraries_log_on_the_sensors_thread_never_reaches_the_apps_handlers():
    # httpx logs each request it makes at INFO: the sensor's exports are not the app's,
    # and an app (a Celery worker) that logs at INFO must print nothing more.
    run = drive("""
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        import spyglass
        with spyglass.tracer().start_active_span("work"):
            logging.getLogger("shop").info("the app's own line")
        assert spyglass.flush(10)
        logging.getLogger("httpx").info("the app's own httpx line")
    """, bootstrap="runtime")
    assert run.receiver.payloads("/v1/traces")
    assert "shop: the app's own line" in run.stderr
    assert "httpx: the app's own httpx line" in run.stderr
    assert "HTTP Request" not in run.stderr
