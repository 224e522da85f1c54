"""The JSON bodies of OTLP/HTTP export requests, from what ``otlp`` builds and from spans.

Runs on the reporter thread only (imported there, at the first export: json stays off the
app's startup). That thread still holds the GIL, so what it spends here is taken from the
app's threads; two choices follow from it:

- spans are written straight to JSON text, not built as dicts for ``json.dumps`` (half
  the cost: ~4 us per span against ~9; ``test_otlp_encoding`` holds the two equal);
- a body is made in pieces, each item encoded when its turn comes and compressed as it
  comes (``Transport.compress``), so a batch never exists whole as text; the reporter
  cuts a batch into requests by the items' encoded size (``encoded_items``), within
  ``max_batch_bytes``.
"""
import json

from .otlp import MAX_STRING, SCOPE, any_value, attributes

CHUNK_SIZE = 32 * 1024

# The lists an export request nests its items in, by signal: resources, scopes, items.
_ENVELOPES = {
    "traces": ("resourceSpans", "scopeSpans", "spans"),
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
}

_string = json.encoder.encode_basestring  # a str as a quoted JSON string (C, when built)


def _dumps(payload) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)


_SCOPE_JSON = _dumps(SCOPE)


def envelope(kind, resource):
    """The bytes an export request of ``kind`` starts and ends with, around its items."""
    resources, scopes, key = _ENVELOPES[kind]
    head = _dumps({"resource": {"attributes": attributes(resource)}})[:-1]
    opening = f'{{"{resources}":[{head},"{scopes}":[{{"scope":{_SCOPE_JSON},"{key}":['
    return opening.encode("utf-8", "replace"), b"]}]}]}"


def encoded_items(kind, items):
    """Each item as (its JSON in UTF-8, its weight): for "traces" (``items``: one per local
    trace, the list of its finished spans or its root span alone) the trace's spans joined
    by commas, weighing its number of spans; for "logs" (LogRecord dicts, see
    ``otlp.log_record``) and "metrics" (Metric dicts) one item, weighing 1."""
    if kind == "traces":
        for trace in items:
            if isinstance(trace, (list, tuple)):
                yield ",".join(map(_span_json, trace)).encode("utf-8", "replace"), len(trace)
            else:
                yield _span_json(trace).encode("utf-8", "replace"), 1
    else:
        for item in items:
            yield _dumps(item).encode("utf-8", "replace"), 1


def body_pieces(head, texts, tail):
    """The pieces of one body: ``head``, the ``texts`` separated by commas, ``tail``."""
    yield head
    separator = b""
    for text in texts:
        yield separator
        yield text
        separator = b","
    yield tail


def body_chunks(kind, resource, items, chunk_size=CHUNK_SIZE):
    """The body of one export request (all of ``items``) in pieces of about
    ``chunk_size`` bytes."""
    head, tail = envelope(kind, resource)
    texts = (text for text, _weight in encoded_items(kind, items))
    pending, size = [], 0
    for piece in body_pieces(head, texts, tail):
        pending.append(piece)
        size += len(piece)
        if size >= chunk_size:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def traces_body(resource, traces) -> bytes:
    return b"".join(body_chunks("traces", resource, traces))


def logs_body(resource, records) -> bytes:
    return b"".join(body_chunks("logs", resource, records))


def metrics_body(resource, metrics) -> bytes:
    return b"".join(body_chunks("metrics", resource, metrics))


def dumps(payload) -> bytes:
    """Any OTLP JSON payload as a body."""
    return _dumps(payload).encode("utf-8", "replace")


# -- spans, written directly ----------------------------------------------------------------

def _span_json(span):
    local = span.local
    extra = ""
    if span.parent_id:
        extra = f',"parentSpanId":"{span.parent_id:016x}"'
    if local.tracestate:
        extra += ',"traceState":' + _string(",".join(f"{k}={v}" for k, v in local.tracestate))
    if span.events:
        extra += ',"events":' + _dumps([
            {"timeUnixNano": str(when), "name": name, "attributes": attributes(attrs)}
            for when, name, attrs in span.events])
    links = span.links  # a local root's, rarely any
    if links:
        extra += ',"links":[' + ",".join(
            f'{{"traceId":"{trace_id:032x}","spanId":"{span_id:016x}"}}'
            for trace_id, span_id in links) + "]"
    if span.status:
        extra += f',"status":{{"code":{span.status},"message":{_string(str(span.status_message))}}}'
    name = span.name
    return (f'{{"traceId":"{local.trace_id:032x}","spanId":"{span.span_id:016x}",'
            f'"name":{_string(name if name.__class__ is str else str(name))},'
            f'"kind":{span.kind},"startTimeUnixNano":"{span.start_ns}",'
            f'"endTimeUnixNano":"{span.end_ns}",'
            f'"attributes":[{_attributes_json(span.attributes)}],'
            f'"flags":{_span_flags(span)}{extra}}}')


def _span_flags(span):
    # W3C trace flags in bits 0-7 (0x01 sampled, 0x02 random trace id); bit 8 says bit 9
    # is known; bit 9: the parent is remote.
    local = span.local
    remote_parent = span.local_root and bool(span.parent_id)
    return (0x100 | (0x200 if remote_parent else 0) | (1 if local.sampled else 0)
            | (2 if local.random_trace_id else 0))


def _attributes_json(mapping):
    """``otlp.attributes(mapping)`` as JSON text (the inside of its list)."""
    return ",".join([
        f'{{"key":{_string(key if key.__class__ is str else str(key))},"value":{_value_json(value)}}}'
        for key, value in mapping.items()])


def _value_json(value):
    """``otlp.any_value(value)`` as JSON text; the common types written directly."""
    kind = value.__class__
    if kind is str:
        return f'{{"stringValue":{_string(value[:MAX_STRING])}}}'
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return f'{{"intValue":"{value}"}}'
    if kind is bool:
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if kind is float and value - value == 0.0:  # finite
        return f'{{"doubleValue":{value!r}}}'
    return _dumps(any_value(value))
