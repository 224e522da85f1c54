"""What one OTLP request becomes once decoded: plain rows, ready for any store.

The decoders (``otlp_proto``, ``otlp_json``) produce a ``Batch``; a store writes it in one
transaction. Rows are tuples in the column order named here so that the SQLite store can
hand them to ``executemany`` as they are.
"""
import hashlib
import json
from dataclasses import dataclass, field

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "resource_key", "service", "scope", "name", "kind",
    "start_ns", "end_ns", "duration_ns", "status_code", "status_message", "is_root", "route",
    "http_method", "http_status", "is_error", "user_id", "call_key", "call_label",
    "call_category", "call_count", "attributes", "events", "links",
)
LOG_COLUMNS = (
    "time_ns", "resource_key", "service", "severity_number", "severity_text", "body",
    "trace_id", "span_id", "event_name", "attributes",
)
METRIC_COLUMNS = (
    "time_ns", "resource_key", "service", "instance", "name", "unit", "kind", "monotonic",
    "temporality", "attributes", "value", "count", "sum", "buckets",
)
PROFILE_COLUMNS = (
    "time_ns", "resource_key", "service", "trace_id", "span_id", "stack", "samples",
)

#: Deepest nesting of array/kvlist attribute values accepted; deeper is refused (400).
MAX_VALUE_DEPTH = 32

def _json_encoder():
    """``json.dumps`` for our rows, minus its per-call setup (a third of its cost on ingest)."""
    from json import encoder

    if encoder.c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    # markers=None: no cycle check; the values are trees we built from OTLP.
    encode = encoder.c_make_encoder(None, str, encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda value: "".join(encode(value, 0))


dumps = _json_encoder()


@dataclass(frozen=True)
class Resource:
    """The sender of a batch: a service's process, identified by its resource attributes."""

    key: str
    service: str
    instance: str
    sdk: str
    attributes: str  # JSON

    @classmethod
    def from_attributes(cls, attributes):
        encoded = dumps(attributes)
        instance = attributes.get("service.instance.id") or ":".join(
            str(part) for part in (attributes.get("host.name"), attributes.get("process.pid")) if part
        )
        return cls(
            key=hashlib.blake2b(encoded.encode(), digest_size=8).hexdigest(),
            service=str(attributes.get("service.name") or "unknown_service"),
            instance=str(instance or "-"),
            sdk=str(attributes.get("telemetry.sdk.name") or ""),
            attributes=encoded,
        )


@dataclass
class ErrorEvent:
    """One occurrence of an error, grouped by ``(service, fingerprint)``."""

    time_ns: int
    resource_key: str
    service: str
    fingerprint: str
    type: str
    message: str
    culprit: str
    trace_id: str = None
    span_id: str = None
    route: str = None
    user_id: str = None
    handled: bool = None
    source: str = "log"
    event: dict = field(default_factory=dict)


@dataclass
class Batch:
    """Everything decoded from one export request, plus what was rejected from it."""

    resources: dict = field(default_factory=dict)  # key -> Resource
    spans: list = field(default_factory=list)
    logs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    profiles: list = field(default_factory=list)  # rows of PROFILE_COLUMNS (otlp_profiles)
    rejected: int = 0
    rejected_reason: str = ""

    def reject(self, reason):
        """Count one item the sender sent but we could not keep (OTLP partial success)."""
        self.rejected += 1
        self.rejected_reason = self.rejected_reason or reason
