"""Every body the sensor exports parses strictly against the OTLP protobuf schema."""
import gzip
import json

import pytest
from hypothesis import given, settings, strategies as st
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from support.processes import run_python
from spyglass.report import encode, otlp
from spyglass.report.transport import Transport
from spyglass.trace.tracer import Tracer

RESOURCE = {"service.name": "svc", "process.pid": 42, "process.command_args": ["a", "b"]}


class Odd:
    def __str__(self):
        return "odd-value"


def strict(body, message):
    return json_format.Parse(body, message(), ignore_unknown_fields=False)


def test_spans_with_every_attribute_type():
    exported = []
    tracer = Tracer(export=exported.append)
    with tracer.start_active_span("root") as scope:
        span = scope.span
        for key, value in {"str": "x", "int": 7, "neg": -3, "big": 2**70, "float": 1.5,
                           "nan": float("nan"), "bool": True, "none": None,
                           "bytes": b"\x00\xff", "list": [1, "a", 2.5], "dict": {"k": [1]},
                           "odd": Odd(), "unicode": "žluťoučký \ud800"}.items():
            span.set_tag(key, value)
        span.log_kv({"event": "checkpoint", "n": 1})
        span.set_tag("span.kind", "server")
        try:
            with tracer.start_active_span("child"):
                raise KeyError("k")
        except KeyError:
            pass
    body = encode.traces_body(RESOURCE, exported)
    request = strict(body, ExportTraceServiceRequest)
    spans = request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["child", "root"]
    child, root = spans
    # OTLP/JSON writes ids in hex, unlike protobuf's JSON mapping of bytes (base64): the
    # strict parse checks the structure, the ids are checked on the JSON itself.
    encoded = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert encoded[0]["parentSpanId"] == encoded[1]["spanId"]
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in encoded)
    assert int(encoded[1]["traceId"], 16) == exported[0][1].trace_id
    assert root.kind == 2 and child.status.code == 2
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["big"].string_value == str(2**70)
    assert attrs["int"].int_value == 7 and attrs["bool"].bool_value
    assert attrs["bytes"].bytes_value == b"\x00\xff"
    assert [v.int_value for v in attrs["list"].array_value.values][:1] == [1]
    assert attrs["odd"].string_value == "odd-value"
    assert child.events[0].name == "exception"


def test_remote_parent_flag_on_a_continued_trace():
    exported = []
    tracer = Tracer(export=exported.append)
    import opentracing

    context = tracer.extract(opentracing.Format.HTTP_HEADERS, {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"})
    with tracer.start_active_span("server", child_of=context):
        with tracer.start_active_span("inner"):
            pass
    payload = json.loads(encode.traces_body(RESOURCE, exported))
    inner, server = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert server["flags"] == 0x301 and inner["flags"] == 0x101
    assert server["traceState"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"


def test_logs_and_metrics_bodies():
    record = otlp.log_record(1_700_000_000_000_000_000, 17, "ERROR", "boom",
                             {"event.name": "spyglass.error", "n": 3}, trace_id=5, span_id=6)
    strict(encode.logs_body(RESOURCE, [record]), ExportLogsServiceRequest)
    metrics = [
        otlp.sum_metric("c", "{item}", "d", [otlp.number_point(3, 2, 1, {"a": "b"})]),
        otlp.gauge_metric("g", "By", "d", [otlp.number_point(2.5, 2)]),
    ]
    request = strict(encode.metrics_body(RESOURCE, metrics), ExportMetricsServiceRequest)
    assert request.resource_metrics[0].scope_metrics[0].metrics[0].sum.is_monotonic


@pytest.mark.parametrize("interval", ["0.3"])
def test_the_sensors_own_counters_arrive_as_metrics(receiver, interval):
    run_python("""
        import opentracing, time
        with opentracing.tracer.start_active_span("x"):
            pass
        time.sleep(1.2)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
        SPYGLASS_METRICS_INTERVAL=interval)
    metrics = receiver.wait_for(lambda r: {m["name"] for m in r.metrics()} >= {
        "spyglass.queue.queued", "spyglass.export.sent"} and r.metrics())
    names = {m["name"] for m in metrics}
    assert {"spyglass.queue.dropped", "spyglass.export.failed", "spyglass.queue.size"} <= names
    sent = [m for m in metrics if m["name"] == "spyglass.export.sent"][-1]
    assert int(sent["sum"]["dataPoints"][0]["asInt"]) >= 1
    assert receiver.schema_errors == []


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(values, st.one_of(st.text(), st.integers()))
def test_attributes_written_directly_are_what_the_dict_mapping_says(value, key):
    # The span writer skips the dicts for speed; what it writes must be any_value's JSON.
    direct = json.loads(f"[{encode._attributes_json({key: value})}]".encode("utf-8", "replace"))
    mapped = json.loads(encode.dumps(otlp.attributes({key: value})))
    assert direct == mapped


def test_span_fields_written_directly_parse_as_the_protobuf_message_says():
    exported = []
    tracer = Tracer(export=exported.append)
    with tracer.start_active_span('quote " back\\\\slash \u2028 \ud800') as scope:
        scope.span.set_tag(3, 'int key')
        scope.span.mark_error('bad "thing"')
    request = strict(encode.traces_body(RESOURCE, exported), ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == 'quote " back\\\\slash \u2028 ?'
    assert span.status.message == 'bad "thing"'
    assert {a.key: a.value.string_value for a in span.attributes} == {"3": "int key"}
    resource = {a.key for a in request.resource_spans[0].resource.attributes}
    assert resource == set(RESOURCE)


def test_a_local_roots_links_are_encoded_as_otlp_span_links():
    exported = []
    tracer = Tracer(export=exported.append, export_lone_root=exported.append)
    with tracer.start_active_span("retry") as scope:
        scope.span.add_link(0xABC, 0xDEF)
        with tracer.start_active_span("child"):
            pass
    body = encode.traces_body(RESOURCE, exported)
    strict(body, ExportTraceServiceRequest)
    child, root = json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert root["links"] == [{"traceId": f"{0xABC:032x}", "spanId": f"{0xDEF:016x}"}]
    assert "links" not in child


def test_lone_roots_are_encoded_as_the_reporter_receives_them():
    # The agent's tracer hands a trace that is its root alone to the reporter as the span
    # itself, not in a list; the body must be the one the lists would make.
    bare = []
    tracer = Tracer(export=bare.append, export_lone_root=bare.append)
    for name in ("first", "second"):
        with tracer.start_active_span(name):
            pass
    with tracer.start_active_span("parent"):
        with tracer.start_active_span("child"):
            pass
    assert [type(trace).__name__ for trace in bare] == ["RootSpan", "RootSpan", "list"]
    listed = [trace if isinstance(trace, list) else [trace] for trace in bare]
    body = encode.traces_body(RESOURCE, bare)
    assert body == encode.traces_body(RESOURCE, listed)
    spans = strict(body, ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans
    assert [span.name for span in spans] == ["first", "second", "child", "parent"]


def test_a_body_in_chunks_is_the_same_body_whatever_the_chunk_size():
    # The reporter streams a batch's body into gzip in pieces; the pieces must make the
    # very body the whole encoders make.
    exported = []
    tracer = Tracer(export=exported.append)
    for i in range(50):
        with tracer.start_active_span("root") as scope:
            scope.span.set_tag("text", "žluťoučký \ud800 " + "x" * i)
            scope.span.log_kv({"event": "checkpoint", "n": i})
            with tracer.start_active_span("child"):
                pass
    records = [otlp.log_record(1, 17, "ERROR", "boom", {"n": n}) for n in range(5)]
    metrics = [otlp.gauge_metric("g", "By", "d", [otlp.number_point(n, 2)]) for n in range(5)]
    transport = Transport("http://127.0.0.1:9", {}, 1.0)
    try:
        for kind, whole, items, message in (
                ("traces", encode.traces_body, exported, ExportTraceServiceRequest),
                ("logs", encode.logs_body, records, ExportLogsServiceRequest),
                ("metrics", encode.metrics_body, metrics, ExportMetricsServiceRequest),
                ("traces", encode.traces_body, [], ExportTraceServiceRequest)):
            body = whole(RESOURCE, items)
            strict(body, message)
            for chunk_size in (1, 100, encode.CHUNK_SIZE):
                chunks = list(encode.body_chunks(kind, RESOURCE, items, chunk_size))
                assert b"".join(chunks) == body
                assert gzip.decompress(transport.compress(iter(chunks))) == body
        assert len(list(encode.body_chunks("traces", RESOURCE, exported, 1000))) > 5
    finally:
        transport.close()
