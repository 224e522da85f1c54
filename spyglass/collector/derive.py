"""What the collector reads into a span, a log record or an error as it arrives.

Requests, calls and errors are derived once, at ingest, into indexed columns, so that the
queries the UI makes stay simple range scans. The conventions are those of
docs/Telemetry.md; for senders that are not spyglass we fall back on OpenTelemetry's
semantic conventions alone.
"""
import hashlib
import json
import re
from functools import lru_cache

from .model import ErrorEvent, dumps

SERVER, CLIENT, CONSUMER = 2, 3, 5
STATUS_ERROR = 2
SEVERITY_ERROR = 17
SQL_SYSTEMS = frozenset({
    "sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle", "db2", "cockroachdb",
    "other_sql", "h2", "derby", "hsqldb", "firebird", "clickhouse", "trino", "spanner",
})


def _short_hash(text):
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _as_int(value):
    if value is None or type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- calls -------------------------------------------------------------------------------

_SQL_LITERALS = re.compile(
    r"'(?:[^']|'')*'"          # string literal
    r"|\b0x[0-9a-fA-F]+\b"      # hex literal
    r"|(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b"  # number not part of a name
)
_SQL_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)+\s*\)", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


@lru_cache(maxsize=4096)
def normalize_statement(statement):
    """``statement`` with literals replaced by ``?`` and ``IN (?, ?, ?)`` collapsed.

    spyglass's sensor already obfuscates; other senders may not, and grouping needs it.
    """
    text = _SQL_LITERALS.sub("?", statement)
    text = _SQL_IN_LIST.sub("IN (?)", text)
    return _WHITESPACE.sub(" ", text).strip()


def _call_category(attributes):
    category = attributes.get("spyglass.category")
    if category:
        return str(category)
    system = attributes.get("db.system.name") or attributes.get("db.system")
    if system:
        return "sql" if system in SQL_SYSTEMS else "nosql"
    return "remote"


def call_identity(kind, name, attributes):
    """``(key, label, category, count)`` of a call span, or ``None`` for other spans.

    A call is a CLIENT span or any span the sensor gave a category. Calls group by their
    normalized statement (databases) or by operation (method and host, else span name).
    """
    if kind != CLIENT and "spyglass.category" not in attributes:
        return None
    category = _call_category(attributes)
    statement = attributes.get("db.query.text") or attributes.get("db.statement")
    if statement:
        label = normalize_statement(str(statement))
        key = attributes.get("spyglass.statement.hash") or _short_hash(label)
    else:
        method = attributes.get("http.request.method") or attributes.get("http.method")
        host = attributes.get("server.address") or attributes.get("net.peer.name")
        label = f"{method} {host}" if method and host else name
        key = _short_hash(f"{category}\0{label}")
    count = _as_int(attributes.get("spyglass.count")) or 1
    return str(key), label, category, count


# -- spans -------------------------------------------------------------------------------

def span_row(resource, scope, trace_id, span_id, parent_id, name, kind, start_ns, end_ns,
             status_code, status_message, attributes, events, links):
    """One row of ``model.SPAN_COLUMNS``."""
    is_root = not parent_id or kind == SERVER or kind == CONSUMER
    http_status = _as_int(attributes.get("http.response.status_code", attributes.get("http.status_code")))
    is_error = status_code == STATUS_ERROR or (is_root and http_status is not None and http_status >= 500)
    route = (attributes.get("http.route") or name) if is_root else None
    call = call_identity(kind, name, attributes) or (None, None, None, None)
    return (
        trace_id, span_id, parent_id or None, resource.key, resource.service, scope, name, kind,
        start_ns, end_ns, max(0, end_ns - start_ns), status_code, status_message or None,
        int(is_root), route, attributes.get("http.request.method") or attributes.get("http.method"),
        http_status, int(is_error), _str_or_none(attributes.get("enduser.id")), *call,
        dumps(attributes), dumps(events) if events else None, dumps(links) if links else None,
    )


def _str_or_none(value):
    return None if value is None or value == "" else str(value)


# -- errors ------------------------------------------------------------------------------

_PY_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<lineno>\d+), in (?P<function>.+?)\s*$')
_NOT_APP = ("site-packages", "dist-packages", "/lib/python", "\\lib\\", "<frozen", "<string>")


def frames_from_stacktrace(text):
    """Frames (outermost first) parsed from a Python traceback's text; ``[]`` if not Python."""
    frames = []
    lines = (text or "").splitlines()
    for index, line in enumerate(lines):
        match = _PY_FRAME.match(line)
        if not match:
            continue
        path = match["path"]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        code = following.strip() if following.startswith("    ") and not _PY_FRAME.match(following) else None
        frames.append({
            "filename": path.rsplit("/", 1)[-1], "abs_path": path, "function": match["function"],
            "lineno": int(match["lineno"]), "in_app": not any(part in path for part in _NOT_APP),
            "context_line": code,
        })
    return frames


def fallback_fingerprint(error_type, frames, stacktrace=""):
    """The exception type plus its in-app frames (file and function, not line numbers)."""
    chosen = [f for f in frames if f.get("in_app")] or frames
    if chosen:
        where = "|".join(f"{f.get('module') or f.get('filename')}:{f.get('function')}" for f in chosen)
    else:
        where = re.sub(r"\d+", "", stacktrace or "")
    return _short_hash(f"{error_type}\0{where}")


def culprit(frames):
    """Where it went wrong: the innermost in-app frame, as ``module in function``."""
    chosen = [f for f in frames if f.get("in_app")] or frames
    if not chosen:
        return ""
    frame = chosen[-1]
    return f"{frame.get('module') or frame.get('filename') or '?'} in {frame.get('function') or '?'}"


def error_from_span_event(resource, trace_id, span_id, span_attributes, event_time_ns, event_attributes):
    """An ``exception`` span event from a sender that reports no error events of its own."""
    error_type = str(event_attributes.get("exception.type") or "Error")
    message = str(event_attributes.get("exception.message") or "")
    stacktrace = str(event_attributes.get("exception.stacktrace") or "")
    frames = frames_from_stacktrace(stacktrace)
    user_id = _str_or_none(span_attributes.get("enduser.id"))
    event = {"type": error_type, "message": message, "frames": frames, "stacktrace": stacktrace}
    request = {k: span_attributes[k] for k in ("http.request.method", "http.route", "url.path", "url.full")
               if k in span_attributes}
    if request:
        event["request"] = request
    if user_id:
        event["user"] = {"id": user_id}
    return ErrorEvent(
        time_ns=event_time_ns, resource_key=resource.key, service=resource.service,
        fingerprint=fallback_fingerprint(error_type, frames, stacktrace), type=error_type,
        message=message, culprit=culprit(frames), trace_id=trace_id, span_id=span_id,
        route=_str_or_none(span_attributes.get("http.route")), user_id=user_id,
        handled=False, source="span", event=event,
    )


def error_from_log(resource, time_ns, severity_number, body, trace_id, span_id, attributes):
    """The error event carried by a log record, or ``None`` if the record carries none.

    spyglass's sensor sends ``event.name = spyglass.error`` with the full event as a JSON
    body; other senders' ERROR records with ``exception.*`` attributes count too.
    """
    is_spyglass_event = attributes.get("event.name") == "spyglass.error"
    if not is_spyglass_event and not (severity_number >= SEVERITY_ERROR and "exception.type" in attributes):
        return None
    event = _json_object(body) if is_spyglass_event else {}
    error_type = str(event.get("type") or attributes.get("exception.type") or "Error")
    message = str(event.get("message") or attributes.get("exception.message") or "")
    stacktrace = str(attributes.get("exception.stacktrace") or "")
    frames = event.get("frames") if isinstance(event.get("frames"), list) else frames_from_stacktrace(stacktrace)
    frames = [f for f in frames if isinstance(f, dict)]
    event.setdefault("type", error_type)
    event.setdefault("message", message)
    event.setdefault("frames", frames)
    if stacktrace:
        event.setdefault("stacktrace", stacktrace)
    user = event.get("user") if isinstance(event.get("user"), dict) else {}
    user_id = _str_or_none(attributes.get("enduser.id") or user.get("id"))
    fingerprint = (attributes.get("spyglass.error.fingerprint") or event.get("fingerprint")
                   or fallback_fingerprint(error_type, frames, stacktrace))
    handled = event.get("handled")
    return ErrorEvent(
        time_ns=time_ns, resource_key=resource.key, service=resource.service,
        fingerprint=str(fingerprint), type=error_type, message=message, culprit=culprit(frames),
        trace_id=trace_id, span_id=span_id, route=_str_or_none(attributes.get("http.route")),
        user_id=user_id, handled=handled if isinstance(handled, bool) else None,
        source="log", event=event,
    )


def _json_object(text):
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {"message": str(text)}
    return value if isinstance(value, dict) else {"message": str(value)}
