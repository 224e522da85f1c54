"""A real OTLP/HTTP receiver for the tests: it records every request, decodes gzip and
JSON, and parses each body strictly against the OTLP protobuf schema (unknown fields or
wrong types are recorded as schema errors, which the tests assert are absent). Profiles
come as protobuf: parsed with ``opentelemetry-proto``, they must serialize back to the very
bytes received (what the sensor's hand-written encoder promises), and are kept as the
parsed message (``payload``: its JSON mapping as a dict).

Responses can be scripted (``respond_next``) to test retries, 429 with Retry-After, etc.
"""
import collections
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SCHEMAS = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}
PROFILES = "/v1development/profiles"


class Received:
    def __init__(self, path, headers, body, payload, arrived):
        self.path, self.headers, self.body, self.payload, self.arrived = (
            path, headers, body, payload, arrived)


class OTLPReceiver:
    def __init__(self, port=0, host="127.0.0.1"):
        self.requests = []
        self.schema_errors = []
        self._scripted = collections.deque()
        self.not_found = set()  # paths answered with 404, as a receiver that lacks them
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def respond_next(self, status, headers=None, times=1):
        for _ in range(times):
            self._scripted.append((status, headers or {}))

    # -- what arrived -----------------------------------------------------------------------

    def payloads(self, path):
        return [r.payload for r in list(self.requests) if r.path == path and r.payload]

    def spans(self):
        """Every span received, each with its resource attributes as a dict under
        ``resource`` and its attributes decoded into a dict under ``attrs``."""
        found = []
        for payload in self.payloads("/v1/traces"):
            for resource_spans in payload.get("resourceSpans", []):
                resource = decode_attributes(resource_spans.get("resource", {}).get("attributes", []))
                for scope_spans in resource_spans.get("scopeSpans", []):
                    for span in scope_spans.get("spans", []):
                        found.append(dict(span, resource=resource,
                                          attrs=decode_attributes(span.get("attributes", []))))
        return found

    def log_records(self):
        found = []
        for payload in self.payloads("/v1/logs"):
            for resource_logs in payload.get("resourceLogs", []):
                resource = decode_attributes(resource_logs.get("resource", {}).get("attributes", []))
                for scope_logs in resource_logs.get("scopeLogs", []):
                    for record in scope_logs.get("logRecords", []):
                        found.append(dict(record, resource=resource,
                                          attrs=decode_attributes(record.get("attributes", []))))
        return found

    def metrics(self):
        found = []
        for payload in self.payloads("/v1/metrics"):
            for resource_metrics in payload.get("resourceMetrics", []):
                resource = decode_attributes(resource_metrics.get("resource", {}).get("attributes", []))
                for scope_metrics in resource_metrics.get("scopeMetrics", []):
                    for metric in scope_metrics.get("metrics", []):
                        found.append(dict(metric, resource=resource))
        return found

    def profiles(self):
        """Every profile received, as ExportProfilesServiceRequest messages' parts:
        (the request, its resource attributes as a dict, the Profile)."""
        found = []
        for request in list(self.requests):
            if request.path != PROFILES or request.payload is None:
                continue
            message = request.payload
            for resource_profiles in message.resource_profiles:
                resource = {kv.key: json_format.MessageToDict(kv.value)
                            for kv in resource_profiles.resource.attributes}
                for scope_profiles in resource_profiles.scope_profiles:
                    for profile in scope_profiles.profiles:
                        found.append((message, resource, profile))
        return found

    def wait_for(self, predicate, timeout=10.0):
        """Wait until ``predicate(self)`` is true; return its last value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate(self)
                if value or time.monotonic() >= deadline:
                    return value
                self._changed.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def raw_text(self):
        """Everything received, decompressed, as one string: for 'appears nowhere' checks."""
        return "\n".join(r.body.decode("utf-8", "replace") for r in list(self.requests))

    def _parse_profiles(self, headers, body):
        try:
            if headers.get("content-type") != "application/x-protobuf":
                raise ValueError(f"content-type {headers.get('content-type')!r}")
            message = ExportProfilesServiceRequest()
            message.ParseFromString(body)
            if message.SerializeToString(deterministic=True) != body:
                raise ValueError("the body is not what protobuf writes for its message")
            return message
        except Exception as exc:
            self.schema_errors.append((PROFILES, repr(exc)))
            return None

    # -- the HTTP side ----------------------------------------------------------------------

    def _record(self, path, headers, raw):
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        payload = None
        if path == PROFILES:
            payload = self._parse_profiles(headers, body)
            with self._changed:
                self.requests.append(Received(path, headers, body, payload, time.monotonic()))
                self._changed.notify_all()
            return
        try:
            payload = json.loads(body)
            if path in SCHEMAS:
                json_format.Parse(body, SCHEMAS[path](), ignore_unknown_fields=False)
        except Exception as exc:  # recorded, asserted on by the tests
            self.schema_errors.append((path, repr(exc)))
        with self._changed:
            self.requests.append(Received(path, headers, body, payload, time.monotonic()))
            self._changed.notify_all()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path in receiver.not_found:
                    status, extra = 404, {}
                else:
                    status, extra = (receiver._scripted.popleft() if receiver._scripted
                                     else (200, {}))
                if status == 200:
                    receiver._record(self.path, headers, raw)
                else:
                    with receiver._changed:
                        receiver.requests.append(Received(self.path, headers, b"", None, time.monotonic()))
                        receiver._changed.notify_all()
                body = b"{}"
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler


def any_value(value):
    if not value:
        return None
    (kind, inner), = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "arrayValue":
        return [any_value(v) for v in inner.get("values", [])]
    if kind == "kvlistValue":
        return decode_attributes(inner.get("values", []))
    return inner


def decode_attributes(attributes):
    return {item["key"]: any_value(item.get("value")) for item in attributes}
