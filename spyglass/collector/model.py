"""What one OTLP request becomes once decoded: plain rows, ready for any store.

The decoders (``otlp_proto``, ``otlp_json``) produce a ``Batch``; a store writes it in one
transaction. Rows are tuples in the column order named here so that the SQLite store can
hand them to ``executemany`` as they are.
"""
import hashlib
import json
import re
from dataclasses import dataclass, field

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "resource_key", "service", "scope", "name", "kind",
    "start_ns", "end_ns", "duration_ns", "status_code", "status_message", "is_root", "route",
    "http_method", "http_status", "is_error", "user_id", "call_key", "call_label",
    "call_category", "call_count", "attributes", "events", "links", "is_slow",
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
#: Key-values kept per attribute list (of a span, event, link, log record, point, resource or
#: kvlist) and elements kept per array; the rest are dropped and the sender is told.
MAX_ATTRIBUTES = 1024
#: Attribute values (array elements and kvlist entries included) decoded per request, an item
#: (span, log record, data point) counting as ``ITEM_COST`` more; the items beyond are
#: rejected (OTLP partial success). Bounds the rows, so the memory, one request makes:
#: 32,768 spans without attributes, or 8,192 with 24 each.
MAX_VALUES = 1 << 18
ITEM_COST = 8
#: Bodies up to this size are parsed whole, the fastest way; larger ones item by item, so
#: that their memory is the rows they make and one item, not ten times the body.
WHOLE_BODY_BYTES = 1 << 20
#: The largest span, log record or metric (with all its points) a large body may carry.
MAX_ITEM_BYTES = 1 << 20
#: What a large body's reader gives for an item it did not parse: one too large, or any
#: once the request is over its budget.
SKIPPED = object()

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1
#: How non-finite doubles are stored among attributes: as OTLP/JSON writes them.
NON_FINITE_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_encoder():
    """``json.dumps`` for our rows, minus its per-call setup (a third of its cost on ingest)."""
    from json import encoder

    if encoder.c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False).encode
    # markers=None: no cycle check; the values are trees we built from OTLP. allow_nan=False:
    # what we store is standard JSON (the decoders turn NaN and the infinities into text).
    encode = encoder.c_make_encoder(None, str, encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


dumps = _json_encoder()


# -- values as stored: every backend gets them in these forms ----------------------------

def clamp_time(value):
    """A ``fixed64`` timestamp as stored: OTLP allows all of uint64, a store's integer is
    int64, so instants past 2262-04-11 are stored as that day's last nanosecond."""
    return value if value <= INT64_MAX else INT64_MAX


def attribute_double(value):
    """A double attribute as stored: itself when finite, else ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"`` (JSON has no such numbers)."""
    return value if value - value == 0 else NON_FINITE_NAMES[repr(value)]


def finite_or_none(value):
    """A measured number as stored: ``None`` for NaN and the infinities (no value)."""
    return value if value is None or value - value == 0 else None


def text(value):
    """An attribute value as the text of a derived column (route, method, user, ...):
    ``None`` for none or empty, strings as they are, booleans as ``true``/``false``,
    numbers in decimal, arrays and kvlists as their JSON."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return repr(value)
    return dumps(value)


# A JSON string may escape half of a surrogate pair alone (``"\\ud800"``): Python reads it
# into a str that no UTF-8 encoder (nor database) takes. Such halves become U+FFFD;
# escaped backslashes are matched first so that ``\\\\ud800`` (a backslash, then text) is left.
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPES = re.compile(r"\\\\"  # an escaped backslash
                      r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a pair
                      r"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # half of one
_PATTERNS = {str: (_SURROGATE_HINT, _ESCAPES, "\\ufffd"),
             bytes: tuple(re.compile(p.pattern.encode()) for p in (_SURROGATE_HINT, _ESCAPES)) + (b"\\ufffd",)}


def without_lone_surrogates(json_text):
    """JSON text (str or bytes) whose escapes all decode to Unicode that UTF-8 can encode."""
    hint, escapes, replacement = _PATTERNS[type(json_text)]
    if not hint.search(json_text):
        return json_text
    return escapes.sub(lambda match: replacement if len(match[0]) == 6 else match[0], json_text)


@dataclass(frozen=True)
class Resource:
    """The sender of a batch: a service's process, identified by its resource attributes."""

    key: str
    service: str
    instance: str
    sdk: str
    attributes: str  # JSON
    version: str = None  # service.version: the release this process runs

    @classmethod
    def from_attributes(cls, attributes):
        encoded = dumps(attributes)
        instance = text(attributes.get("service.instance.id")) or ":".join(
            part for part in (text(attributes.get("host.name")), text(attributes.get("process.pid"))) if part
        )
        return cls(
            key=hashlib.blake2b(encoded.encode(), digest_size=8).hexdigest(),
            service=text(attributes.get("service.name")) or "unknown_service",
            instance=instance or "-",
            sdk=text(attributes.get("telemetry.sdk.name")) or "",
            attributes=encoded,
            version=text(attributes.get("service.version")),
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
    release: str = None  # its process's service.version


@dataclass
class Batch:
    """Everything decoded from one export request, plus what was rejected or dropped from it."""

    resources: dict = field(default_factory=dict)  # key -> Resource
    spans: list = field(default_factory=list)
    logs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    profiles: list = field(default_factory=list)  # rows of PROFILE_COLUMNS (otlp_profiles)
    tags: dict = field(default_factory=dict)  # search.add_tags: key=value -> ids of the traces with it
    untagged: list = field(default_factory=list)  # ids of the traces with a pair left out of tags
    rejected: int = 0
    rejected_reason: str = ""
    dropped_values: int = 0
    #: Attribute values this request may still decode (see ``MAX_VALUES``).
    values_left: int = MAX_VALUES

    def reject(self, reason, count=1):
        """Count items the sender sent but we could not keep (OTLP partial success)."""
        self.rejected += count
        self.rejected_reason = self.rejected_reason or reason

    def spend(self, values):
        """Charge ``values`` decoded attribute values to this request; ``OverBudget`` when
        it has had its ``MAX_VALUES``."""
        self.values_left -= values
        if self.values_left < 0:
            raise OverBudget

    @property
    def over_budget(self):
        return self.values_left < 0

    def keep(self, values):
        """``values`` (an attribute list, an array) cut to ``MAX_ATTRIBUTES``, what is kept
        charged to the budget."""
        if len(values) > MAX_ATTRIBUTES:
            self.dropped_values += len(values) - MAX_ATTRIBUTES
            values = values[:MAX_ATTRIBUTES]
        self.spend(len(values))
        return values

    def read(self, groups, resource_of, read_item):
        """Read a request: ``groups`` is its tree, ``(resource, [(scope name, items)])``;
        ``resource_of(batch, resource)`` makes a ``Resource``, ``read_item(item, resource,
        scope_name)`` adds an item's rows. An item that cannot be kept is rejected."""
        for resource_item, scopes in groups:
            try:
                resource = resource_of(self, resource_item)
            except OverBudget:
                resource = None
            for scope, items in scopes:
                for item in items:  # once per span: kept short
                    self.values_left -= ITEM_COST
                    if self.values_left < 0 or item is SKIPPED or resource is None:
                        self.reject(OVER_BUDGET_REASON if self.over_budget or resource is None else
                                    f"an item larger than {MAX_ITEM_BYTES} bytes")
                        continue
                    try:
                        read_item(item, resource, scope)
                    except OverBudget:
                        self.reject(OVER_BUDGET_REASON)

    @property
    def message(self):
        """What the partial success says: why items were rejected, and values dropped."""
        parts = [self.rejected_reason] if self.rejected else []
        if self.dropped_values:
            parts.append(f"{self.dropped_values} attribute values dropped: at most {MAX_ATTRIBUTES} "
                         f"per attribute list or array are kept")
        return "; ".join(parts)


class OverBudget(Exception):
    """A request decoded its ``MAX_VALUES``: the item being decoded, and the rest, are rejected."""


OVER_BUDGET_REASON = (f"over the limit of {MAX_VALUES} values per request ({ITEM_COST} per item, 1 per "
                      f"attribute): send smaller batches")
