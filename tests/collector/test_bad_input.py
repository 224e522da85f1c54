"""Malformed and hostile requests get a 4xx with a reason, and nothing of them is stored."""
import gzip
import json
import random
import zlib

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spyglass.collector.config import CollectorConfig
from spyglass.collector.server import Collector
from spyglass.collector.sqlite_store import SQLiteStore

from . import payloads

SERVICE = "hostile"


def _valid_spans(service=SERVICE):
    return payloads.request_trace(service, "/x", calls=[("SELECT 1", "sql", 1.0)])[1]


def _json(document):
    return json.dumps(document).encode()


def _with_second_span(field, value):
    """A request whose first span is fine and whose second has ``field`` set to ``value``."""
    spans = _valid_spans()
    spans[1][field] = value
    return _json(payloads.traces(SERVICE, spans))


def _deeply_nested(depth):
    """A request with an attribute value ``depth`` arrays deep (built as text: json can't)."""
    spans = _valid_spans()
    spans[0]["attributes"].append({"key": "deep", "value": "DEEP"})
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth
    return _json(payloads.traces(SERVICE, spans)).replace(b'"DEEP"', value.encode())


JSON = {"Content-Type": "application/json"}
PROTO = {"Content-Type": "application/x-protobuf"}
GZIP_JSON = {**JSON, "Content-Encoding": "gzip"}
CASES = {
    "not json": (b"{not json", JSON, 400, "not valid JSON"),
    "not utf-8": (b'{"resourceSpans": "\xff"}', JSON, 400, "not valid JSON"),
    "json array": (b"[]", JSON, 400, "expected an object"),
    "resourceSpans not a list": (_json({"resourceSpans": {"a": 1}}), JSON, 400, "expected an array"),
    "span not an object": (_json(payloads.traces(SERVICE, ["span"])), JSON, 400, "expected an object"),
    "start time not an integer": (_with_second_span("startTimeUnixNano", "soon"), JSON, 400, "expected an integer"),
    "time beyond uint64": (_with_second_span("startTimeUnixNano", "1" + "0" * 25), JSON, 400, "uint64 range"),
    "int beyond int64": (_with_second_span("attributes", [{"key": "k", "value": {"intValue": str(1 << 63)}}]),
                         JSON, 400, "int64 range"),
    "name not a string": (_with_second_span("name", 12), JSON, 400, "expected a string"),
    "trace id not a string": (_with_second_span("traceId", 5), JSON, 400, "expected a hex string"),
    "kind unknown name": (_with_second_span("kind", "SPAN_KIND_WRONG"), JSON, 400, "expected an integer"),
    "attributes not a list": (_with_second_span("attributes", {"a": "b"}), JSON, 400, "expected an array"),
    "attribute without key": (_with_second_span("attributes", [{"value": {}}]), JSON, 400, "string key"),
    "bool attribute as string": (_with_second_span("attributes", [{"key": "k", "value": {"boolValue": "yes"}}]),
                                 JSON, 400, "expected a boolean"),
    "nested too deep": (_deeply_nested(40), JSON, 400, "nested deeper than"),
    "nested beyond the parser": (_deeply_nested(20_000), JSON, 400, "not valid JSON"),
    "protobuf garbage": (b"\x0a\xff\xff\xff\xff\x0f garbage", PROTO, 400, "not a valid OTLP protobuf"),
    "json sent as protobuf": (_json(payloads.traces(SERVICE, _valid_spans())), PROTO, 400, "protobuf"),
    "unknown content type": (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported content type"),
    "no content type": (b"{}", {}, 415, "unsupported content type"),
    "unknown encoding": (b"{}", {**JSON, "Content-Encoding": "br"}, 415, "unsupported content encoding"),
    "gzip header, not gzip": (b"plain text", GZIP_JSON, 400, "not valid gzip"),
    "truncated gzip": (gzip.compress(_json(payloads.traces(SERVICE, _valid_spans())))[:-12], GZIP_JSON, 400,
                       "truncated"),
    "gzip bomb": (gzip.compress(b" " * (3 << 20)), GZIP_JSON, 413, "inflates to more than"),
    "body too large": (b" " * (2 << 20), JSON, 413, "exceeds the limit"),
}


@pytest.fixture(scope="module")
def small_collector(tmp_path_factory):
    from .conftest import RunningCollector

    running = RunningCollector(tmp_path_factory.mktemp("hostile") / "db.sqlite", "--max-body", "1MB")
    yield running
    running.stop()


@pytest.mark.parametrize("body, headers, status, reason", CASES.values(), ids=CASES.keys())
def test_refused_with_reason_and_nothing_stored(small_collector, body, headers, status, reason):
    got_status, reply_headers, reply = small_collector.request("POST", "/v1/traces", body, headers)
    assert got_status == status
    if reply_headers.get("Content-Type") == "application/json":
        assert reason in json.loads(reply)["message"]
    else:
        from google.rpc.status_pb2 import Status

        assert reason in Status.FromString(reply).message
    services = [s["service"] for s in small_collector.api("/services")["services"]]
    assert SERVICE not in services
    assert small_collector.process.poll() is None


def test_wrong_paths_and_chunked_bodies(small_collector):
    assert small_collector.request("POST", "/v1/spans", b"{}", JSON)[0] == 404
    status, _, body = small_collector.request("POST", "/v1/traces", iter([b"{}"]),
                                              {**JSON, "Transfer-Encoding": "chunked"})
    assert status == 411 and b"Content-Length" in body
    assert small_collector.request("GET", "/no/such/page")[0] == 404
    assert small_collector.request("GET", "/static/../server.py")[0] == 404


def test_api_key_is_required_when_configured(start_collector):
    collector = start_collector("--api-key", "s3cret")
    document = payloads.traces("keyed", _valid_spans("keyed"))
    assert collector.post_json("traces", document)[0] == 401
    assert collector.post_json("traces", document, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert collector.post_json("traces", document, headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert collector.post_json("traces", document, headers={"X-API-Key": "s3cret"})[0] == 200
    status, headers, _ = collector.request("GET", "/api/services")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert collector.request("GET", "/")[0] == 401
    import base64

    basic = {"Authorization": "Basic " + base64.b64encode(b"me:s3cret").decode()}
    services = collector.api("/services", headers=basic)["services"]
    assert [s["service"] for s in services] == ["keyed"]
    assert collector.request("GET", "/static/app.css")[0] == 200  # assets are public


def test_binding_elsewhere_without_a_key_warns(start_collector):
    collector = start_collector("--host", "0.0.0.0")
    collector.stop()
    assert "without an API key" in collector.stderr


def test_fuzzed_bodies_never_crash_the_decoder(tmp_path):
    """Mutated valid bodies: each is stored or refused with a 4xx, never a 5xx or an exception."""
    store = SQLiteStore(str(tmp_path / "fuzz.db"))
    collector = Collector(CollectorConfig(db=str(tmp_path / "fuzz.db")), store)
    rng = random.Random(1234)
    spans = _valid_spans()
    json_body = _json(payloads.traces(SERVICE, spans))
    proto = ExportTraceServiceRequest()
    from google.protobuf import json_format

    document = payloads.traces(SERVICE, spans)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"] = span["spanId"] = span["parentSpanId"] = ""
    proto_body = json_format.ParseDict(document, proto).SerializeToString()
    statuses = set()
    try:
        for round_number in range(400):
            base, content_type = (json_body, "application/json") if round_number % 2 else \
                (proto_body, "application/x-protobuf")
            body = bytearray(base)
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(len(body))
                action = rng.random()
                if action < 0.5:
                    body[position] = rng.randrange(256)
                elif action < 0.75:
                    del body[position: position + rng.randint(1, 20)]
                else:
                    body[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            encoding = "deflate" if round_number % 7 == 0 else None
            if encoding:
                body = zlib.compress(bytes(body))
            reply = collector.ingest("traces", content_type, encoding, bytes(body))
            assert reply.status in (200, 400), reply.body
            statuses.add(reply.status)
    finally:
        store.close()
    assert statuses == {200, 400}
