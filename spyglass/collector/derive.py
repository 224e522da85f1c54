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

from .error_event import clean_event
from .model import INT64_MAX, INT64_MIN, ErrorEvent, clamp_time, dumps, text, without_lone_surrogates

SERVER, CLIENT, CONSUMER = 2, 3, 5
STATUS_ERROR = 2
SEVERITY_ERROR = 17
SQL_SYSTEMS = frozenset({
    "sqlite", "postgresql", "mysql", "mariadb", "mssql", "oracle", "db2", "cockroachdb",
    "other_sql", "h2", "derby", "hsqldb", "firebird", "clickhouse", "trino", "spanner",
})


@lru_cache(maxsize=4096)  # the same few statements and operations, call after call
def _short_hash(text):
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _as_int(value):
    """An attribute value as an int64 column: ints, integral doubles and decimal strings;
    ``None`` for anything else."""
    if type(value) is not int:
        if type(value) is float and value.is_integer():
            value = int(value)
        elif type(value) is str and value.strip().lstrip("+-").isdecimal() and len(value) < 32:
            value = int(value)
        else:
            return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def _http_status(value):
    status = _as_int(value)
    return status if status is not None and 0 <= status <= 999 else None


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


def _text(attributes, key, fallback=None):
    """The attribute ``key`` (else ``fallback``) as text, the usual non-empty string in short."""
    value = attributes.get(key) or (attributes.get(fallback) if fallback else None)
    return value if type(value) is str else text(value)


def _call_category(attributes):
    category = _text(attributes, "spyglass.category")
    if category:
        return category
    system = _text(attributes, "db.system.name", "db.system")
    if system:
        return "sql" if system in SQL_SYSTEMS else "nosql"
    return "remote"


def call_identity(kind, name, attributes):
    """``(key, label, category, count)`` of a call span, or ``None`` for other spans.

    A call is a CLIENT span or any span the sensor gave a category. Calls group by their
    normalized statement (databases) or by operation (method and host, else span name).
    Runs for every call span: the usual values (non-empty strings) take the short way.
    """
    if kind != CLIENT and "spyglass.category" not in attributes:
        return None
    category = attributes.get("spyglass.category")
    if type(category) is not str or not category:
        category = _call_category(attributes)
    statement = attributes.get("db.query.text") or attributes.get("db.statement")
    if statement and type(statement) is not str:
        statement = text(statement)
    if statement:
        label = normalize_statement(statement)
        key = attributes.get("spyglass.statement.hash") or None
        if key is not None and type(key) is not str:
            key = text(key)
        key = key or _short_hash(label)
    else:
        method = _text(attributes, "http.request.method", "http.method")
        host = _text(attributes, "server.address", "net.peer.name")
        label = f"{method} {host}" if method and host else name
        key = _short_hash(f"{category}\0{label}")
    count = attributes.get("spyglass.count")
    if count is not None:
        count = _as_int(count)
    return key, label, category, count if count and count > 0 else 1


# -- spans -------------------------------------------------------------------------------

def span_row(resource, scope, trace_id, span_id, parent_id, name, kind, start_ns, end_ns,
             status_code, status_message, attributes, events, links):
    """One row of ``model.SPAN_COLUMNS``; times are uint64 as OTLP sends them.

    Runs once per span: each derived column takes the short way for the usual value (a
    non-empty string, a status code) and ``text`` or ``_http_status`` for any other.
    """
    is_root = not parent_id or kind == SERVER or kind == CONSUMER
    http_status = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    if http_status is not None and (type(http_status) is not int or not 0 <= http_status <= 999):
        http_status = _http_status(http_status)
    is_error = status_code == STATUS_ERROR or (is_root and http_status is not None and http_status >= 500)
    route = None
    if is_root:
        route = attributes.get("http.route")
        route = (route if type(route) is str else text(route)) or name
    method = attributes.get("http.request.method") or attributes.get("http.method") or None
    if method is not None and type(method) is not str:
        method = text(method)
    user = attributes.get("enduser.id")
    if user is not None and type(user) is not str or user == "":
        user = text(user)
    call = call_identity(kind, name, attributes) or (None, None, None, None)
    if start_ns > INT64_MAX or end_ns > INT64_MAX:
        start_ns, end_ns = clamp_time(start_ns), clamp_time(end_ns)
    return (
        trace_id, span_id, parent_id or None, resource.key, resource.service, scope, name, kind,
        start_ns, end_ns, max(0, end_ns - start_ns), status_code, status_message or None,
        int(is_root), route, method, http_status, int(is_error), user, *call,
        dumps(attributes), dumps(events) if events else None, dumps(links) if links else None,
        int(attributes.get("spyglass.slow") is True),
    )


# -- errors ------------------------------------------------------------------------------

_PY_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<lineno>\d{1,18}), in (?P<function>.+?)\s*$')
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
    event = {"type": text(event_attributes.get("exception.type")) or "Error",
             "message": text(event_attributes.get("exception.message")) or "",
             "stacktrace": text(event_attributes.get("exception.stacktrace")) or ""}
    event["frames"] = frames_from_stacktrace(event["stacktrace"])
    request = {k: span_attributes[k] for k in ("http.request.method", "http.route", "url.path", "url.full")
               if k in span_attributes}
    if request:
        event["request"] = request
    user_id = text(span_attributes.get("enduser.id"))
    if user_id:
        event["user"] = {"id": user_id}
    event = clean_event(event)
    frames = event.get("frames", [])
    return ErrorEvent(
        time_ns=clamp_time(event_time_ns), resource_key=resource.key, service=resource.service,
        fingerprint=fallback_fingerprint(event["type"], frames, event["stacktrace"]), type=event["type"],
        message=event["message"], culprit=culprit(frames), trace_id=trace_id, span_id=span_id,
        route=text(span_attributes.get("http.route")), user_id=user_id,
        handled=False, source="span", event=event, release=resource.version,
    )


def error_from_log(resource, time_ns, severity_number, body, trace_id, span_id, attributes):
    """The error event carried by a log record, or ``None`` if the record carries none.

    spyglass's sensor sends ``event.name = spyglass.error`` with the full event as a JSON
    body; other senders' ERROR records with ``exception.*`` attributes count too.
    """
    is_spyglass_event = attributes.get("event.name") == "spyglass.error"
    if not is_spyglass_event and not (severity_number >= SEVERITY_ERROR and "exception.type" in attributes):
        return None
    event = clean_event(_json_object(body) if is_spyglass_event else {})
    stacktrace = text(attributes.get("exception.stacktrace")) or ""
    if "frames" not in event:
        event["frames"] = frames_from_stacktrace(stacktrace)
    event["type"] = event.get("type") or text(attributes.get("exception.type")) or "Error"
    event["message"] = event.get("message") or text(attributes.get("exception.message")) or ""
    if stacktrace:
        event.setdefault("stacktrace", stacktrace)
    event = clean_event(event)  # again: what came from the attributes is cut to size too
    frames = event["frames"]
    user_id = text(attributes.get("enduser.id")) or text(event.get("user", {}).get("id"))
    fingerprint = (text(attributes.get("spyglass.error.fingerprint")) or event.get("fingerprint")
                   or fallback_fingerprint(event["type"], frames, stacktrace))
    return ErrorEvent(
        time_ns=time_ns, resource_key=resource.key, service=resource.service,
        fingerprint=fingerprint, type=event["type"], message=event["message"], culprit=culprit(frames),
        trace_id=trace_id, span_id=span_id, route=text(attributes.get("http.route")),
        user_id=user_id, handled=event.get("handled"), source="log", event=event, release=resource.version,
    )


def _json_object(text):
    try:
        value = json.loads(without_lone_surrogates(text)) if isinstance(text, str) else text
    except (ValueError, RecursionError):
        return {"message": str(text)}
    return value if isinstance(value, dict) else {"message": str(value)}
