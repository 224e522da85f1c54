"""End to end: a program run under AUTOWRAPT_BOOTSTRAP=runtime delivers its OpenTracing
spans to a real OTLP/HTTP receiver, without calling any flush."""
import os

from support.processes import run_python

NESTED_SPANS = """
    import opentracing
    tracer = opentracing.tracer
    with tracer.start_active_span("outer") as outer:
        outer.span.set_tag("user.id", 7)
        with tracer.start_active_span("middle") as middle:
            middle.span.set_baggage_item("tenant", "acme")
            for i in range(3):
                with tracer.start_active_span("inner") as inner:
                    inner.span.set_tag("i", i)
                    inner.span.log_kv({"event": "tick", "n": i})
    print(type(tracer).__module__)
"""


def test_nested_spans_arrive_with_ids_and_resource(receiver):
    result = run_python(NESTED_SPANS, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_SERVICE_NAME="x")
    assert result.stdout.strip() == "spyglass.trace.tracer"
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 5 and r.spans())
    assert len(spans) == 5
    assert receiver.schema_errors == []
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    outer, = by_name["outer"]
    middle, = by_name["middle"]
    inners = by_name["inner"]
    assert "parentSpanId" not in outer
    assert middle["parentSpanId"] == outer["spanId"]
    assert all(s["parentSpanId"] == middle["spanId"] for s in inners)
    assert len({s["traceId"] for s in spans}) == 1
    assert len(outer["traceId"]) == 32 and len(outer["spanId"]) == 16
    assert len({s["spanId"] for s in spans}) == 5
    assert sorted(s["attrs"]["i"] for s in inners) == [0, 1, 2]
    assert inners[0]["events"][0]["name"] == "tick"
    assert outer["attrs"]["user.id"] == 7
    resource = outer["resource"]
    assert resource["service.name"] == "x"
    assert resource["telemetry.sdk.name"] == "spyglass"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["process.runtime.name"] == "cpython"
    for key in ("host.name", "process.pid", "process.runtime.version", "process.command_args",
                "telemetry.sdk.version"):
        assert key in resource
    for span in spans:
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    request = receiver.requests[0]
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"


def test_resource_environment_release_and_otel_attributes(receiver):
    run_python(NESTED_SPANS, AUTOWRAPT_BOOTSTRAP="runtime", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
               OTEL_SERVICE_NAME="from-otel", SPYGLASS_ENVIRONMENT="staging",
               SPYGLASS_RELEASE="1.2.3", OTEL_RESOURCE_ATTRIBUTES="team=core,region=eu%20west",
               OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cret")
    spans = receiver.wait_for(lambda r: r.spans())
    resource = spans[0]["resource"]
    assert resource["service.name"] == "from-otel"
    assert resource["deployment.environment.name"] == "staging"
    assert resource["service.version"] == "1.2.3"
    assert resource["team"] == "core" and resource["region"] == "eu west"
    assert receiver.requests[0].headers["x-api-key"] == "s3cret"


def test_secret_command_line_arguments_are_not_exported(receiver):
    code = NESTED_SPANS + "\nimport sys\n"
    import subprocess
    import sys
    import textwrap

    from support.processes import clean_env

    subprocess.run([sys.executable, "-c", textwrap.dedent(NESTED_SPANS), "--password", "hunter2",
                    "--token=abc123"], check=True, capture_output=True,
                   env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url))
    receiver.wait_for(lambda r: r.spans())
    text = receiver.raw_text()
    assert "hunter2" not in text and "abc123" not in text
    assert "--password" in text


def test_an_idle_program_sends_nothing_loads_no_httpx_and_exits_at_once(receiver):
    import time

    started = time.monotonic()
    result = run_python("""
        import sys
        print('httpx' in sys.modules)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.strip() == "False"
    assert time.monotonic() - started < 5
    assert receiver.requests == []
