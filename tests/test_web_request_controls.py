"""Per-request controls (the WSGI environ's ``spyglass.*`` keys) and the settings that
shape what a request reports: report_404, ignore_paths, ignore_slow_paths,
report_local_vars, filter_callable and head sampling with force_send. Each interpreter
runs the unmodified app (tests/apps/flask_controls_app.py) under AUTOWRAPT_BOOTSTRAP=flask
and sends to a real OTLP receiver."""
import pytest

from support.web import drive

GO = """
    import json
    from flask_controls_app import app
    client = app.test_client()

    def go(path, **controls):
        environ = {"spyglass." + key: value for key, value in controls.items()}
        response = client.get(path, environ_overrides=environ)
        response.close()  # as a WSGI server does: the request's span ends here
        print(json.dumps({"path": path, "status": response.status_code}))
"""

CONTROLS = GO + """
    go("/fail?n=1", report_local_vars="1")
    go("/fail?n=2")
    go("/nowhere")
    go("/slow?s=0.25", ignore_slow=True)
    go("/slow?s=0.25")
    go("/downloads/big.iso?s=0.25")
    go("/health")
    go("/fail?n=3", ignore_error="1")
    go("/ok", view_name="home-page")
    go("/fail?n=4", group_string="grp-A")
    go("/fail?n=5", group_string="grp-A")
    go("/grouped?n=1")
    go("/grouped?n=2")
    go("/fail?n=6", message="checkout broke")
    go("/fail?n=7", ignore_error="false")
    go("/fail?n=drop")
    go("/fail?n=explode-1")
    go("/fail?n=explode-2")
"""


@pytest.fixture(scope="module")
def run():
    return drive(CONTROLS, SPYGLASS_REPORT_404="true", SPYGLASS_SLOW_REQUEST_TIME="0.2",
                 SPYGLASS_IGNORE_PATHS="/health,/static", SPYGLASS_IGNORE_SLOW_PATHS="/downloads",
                 SPYGLASS_FILTER_CALLABLE="event_filters:screen")


def error(run, message):
    found = [e for e in run.errors() if e["message"] == message]
    assert len(found) == 1, (message, [e["message"] for e in run.errors()])
    return found[0]


def span_for(run, path):
    found = [s for s in run.spans() if s["attrs"]["url.path"] == path]
    assert found, path
    return found


def test_the_app_sees_the_same_responses(run):
    statuses = {o["path"]: o["status"] for o in run.outputs}
    assert statuses["/fail?n=1"] == statuses["/fail?n=3"] == 500
    assert statuses["/nowhere"] == 404 and statuses["/ok"] == 200
    assert drive(CONTROLS, bootstrap=None).outputs == run.outputs


def test_report_local_vars_per_request(run):
    frame = [f for f in error(run, "failure 1 apple")["frames"] if f["function"] == "fail"][0]
    assert frame["vars"]["basket"] == "['apple', 'pear']"
    assert frame["vars"]["api_token"] == "[Filtered]"
    assert "tok-LOCAL-SECRET" not in run.receiver.raw_text()
    assert all("vars" not in f for f in error(run, "failure 2 apple")["frames"])


def test_report_404_makes_a_404_an_error(run):
    span, = span_for(run, "/nowhere")
    assert span["status"]["code"] == 2
    assert span["attrs"]["http.response.status_code"] == 404
    event = error(run, "404 Not Found")
    assert event["_record"]["spanId"] == span["spanId"]
    assert event["request"]["url"] == "http://localhost/nowhere"


def test_ignore_slow_and_ignore_slow_paths(run):
    slow = [s["attrs"].get("spyglass.slow") for s in span_for(run, "/slow")]
    assert sorted(slow, key=str) == [None, True]  # the one with ignore_slow is not slow
    download, = span_for(run, "/downloads/big.iso")
    assert "spyglass.slow" not in download["attrs"]


def test_ignore_paths_are_not_traced_at_all(run):
    assert not [s for s in run.spans() if s["attrs"]["url.path"] == "/health"]


def test_ignore_error(run):
    assert not [e for e in run.errors() if e["message"].startswith("failure 3")]
    span, = [s for s in span_for(run, "/fail")
             if not [e for e in s.get("events", []) if e["name"] == "exception"]]
    assert span.get("status", {}).get("code", 0) == 0
    assert span["attrs"]["http.response.status_code"] == 500
    error(run, "failure 7 apple")  # "false" is false


def test_view_name_names_the_span(run):
    span, = span_for(run, "/ok")
    assert span["name"] == "GET home-page"
    assert span["attrs"]["http.route"] == "home-page"


def test_group_string_sets_the_fingerprint(run):
    four, five = error(run, "failure 4 apple"), error(run, "failure 5 apple")
    assert four["fingerprint"] == five["fingerprint"]
    assert four["_attrs"]["spyglass.error.fingerprint"] == four["fingerprint"]
    assert error(run, "failure 2 apple")["fingerprint"] != four["fingerprint"]
    # Set by the view itself while handling the request:
    one, two = error(run, "grouped 1"), error(run, "grouped 2")
    assert one["fingerprint"] == two["fingerprint"] != four["fingerprint"]
    assert one["_attrs"]["http.route"] == "grouped-view"
    assert {s["name"] for s in span_for(run, "/grouped")} == {"GET grouped-view"}


def test_message_goes_with_the_error_event(run):
    assert error(run, "failure 6 apple")["contexts"]["report"] == {"message": "checkout broke"}
    assert "report" not in error(run, "failure 2 apple").get("contexts", {})


def test_filter_callable_changes_drops_or_is_bypassed_when_it_raises(run):
    assert error(run, "failure 2 apple")["tags"]["screened"] == "yes"
    assert not [e for e in run.errors() if "drop" in e["message"]]
    for message in ("failure explode-1 apple", "failure explode-2 apple"):
        event = error(run, message)  # sent as it was: the filter's changes are not kept
        assert "tags" not in event or "screened" not in event["tags"]
    assert not [e for e in run.errors() if e["message"] == "changed before raising"]
    assert run.stderr.count("raised; events are sent unfiltered") == 1
    assert run.receiver.schema_errors == []


SAMPLED_OUT = GO + """
    go("/ok")
    go("/ok?forced=1", force_send="1")
    go("/fail?n=1")
    go("/slow?s=0.25")
    go("/slow?s=0.25&quiet=1", ignore_slow="yes")
"""


def test_force_send_exports_a_request_that_head_sampling_dropped():
    run = drive(SAMPLED_OUT, SPYGLASS_SAMPLE_RATE="0", SPYGLASS_SLOW_REQUEST_TIME="0.2")
    spans = run.spans()
    assert len(spans) == 3, [s["name"] for s in spans]
    forced, = span_for(run, "/ok")
    assert forced["attrs"]["spyglass.sampled"] is False
    assert span_for(run, "/fail")[0]["status"]["code"] == 2
    slow, = span_for(run, "/slow")  # the one under ignore_slow is not kept
    assert slow["attrs"]["spyglass.slow"] is True
    assert run.receiver.schema_errors == []
