"""The capture pipeline: exception or message -> error event -> before_send -> OTLP log.

Everything here runs on the app's thread, on the error path only, and never raises into
the app: a failure inside is logged once on the ``spyglass`` logger and the event is lost.

An error event goes out as one OTLP log record (docs/Telemetry.md): severity by level,
``event.name = spyglass.error``, the JSON event as body, ``exception.*``,
``spyglass.error.fingerprint``, ``enduser.id`` and ``http.route`` as attributes, and the
trace and span ids of where it happened.
"""
import copy
import json
import logging
import os
import sys
import time
from contextvars import ContextVar

from .. import process
from ..config import truthy
from . import scope as scope_module
from ..trace.context import current_span, suppressed
from .event import build_error_event, fingerprint_of, format_stacktrace
from ..redact.scrub import FILTERED

log = logging.getLogger("spyglass")

SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warning": 13, "warn": 13, "error": 17,
            "fatal": 21, "critical": 21}
EVENT_NAME = "spyglass.error"
_KNOWN_CONTEXT_KEYS = frozenset(("tags", "user", "contexts", "fingerprint", "level", "handled"))

_settings = None      # (agent, scrubber, filter from config) for the running agent
_before_send = None   # set in code; wins over the filter_callable setting
_failed_filters = set()   # ids of filters whose failure was logged already


# -- per-agent settings -------------------------------------------------------------------

def settings(agent):
    """``(scrubber, config filter)`` for ``agent``, made once."""
    global _settings
    cached = _settings
    if cached is None or cached[0] is not agent:
        cached = _settings = (agent, agent.scrubber, _load_filter(agent.config.filter_callable))
    return cached[1], cached[2]


def _load_filter(path):
    if not path:
        return None
    module_name, _, attribute = path.partition(":")
    try:
        import importlib

        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise TypeError(f"{path} is not callable")
        return target
    except Exception:
        log.exception("spyglass: cannot load filter_callable %r; events are sent unfiltered", path)
        return None


def set_before_send(function):
    """``function(event) -> event or None``, run on every error event before it is sent.
    None removes it (the ``filter_callable`` setting applies again)."""
    global _before_send
    _before_send = function


# -- public capture API --------------------------------------------------------------------

def capture_exception(exc=None, **context):
    """Send an error event for ``exc`` (default: the exception being handled).

    ``context`` may hold ``tags``, ``user``, ``contexts``, ``fingerprint``, ``level`` and
    ``handled`` (default True); any other keyword goes into the event's ``extra``
    context. Returns the event id, or None when nothing was sent.
    """
    if exc is None:
        exc = sys.exc_info()[1]
    elif isinstance(exc, tuple):  # an exc_info triple
        exc = exc[1]
    if not isinstance(exc, BaseException):
        return None
    handled = bool(context.pop("handled", True))
    try:
        return _capture(exc, handled, context)
    except Exception:
        log.exception("spyglass: capture_exception failed")
        return None


def capture_message(message, level="info", **context):
    """Send ``message`` as an event of ``level``; returns the event id or None."""
    try:
        agent = process.agent
        if agent is None or suppressed.get():
            return None
        return _message(agent, scope_module.current_request(), message, level, context)
    except Exception:
        log.exception("spyglass: capture_message failed")
        return None


def _message(agent, request, message, level, context, span=None):
    scrubber, _ = settings(agent)
    text = scrubber.text(str(message))
    event = {"type": "Message", "module": "", "message": text, "frames": [], "chain": [],
             "group": [], "handled": True, "level": str(level), "timestamp": time.time()}
    event["fingerprint"] = fingerprint_of(event, custom=["message", text])
    _decorate(event, agent, scrubber, request, context)
    return _send(agent, event, None, request, scrubber, span=span)


# -- for the request integrations ----------------------------------------------------------

def capture_unhandled(exc, request):
    """An exception that escaped the app's view: mark the request's span and send the
    event (once per exception, whoever reports it first)."""
    try:
        if not isinstance(exc, Exception) or request.already_captured(exc):
            return
        request.captured_exception(exc)
        if truthy(request.option("ignore_error")):
            return
        agent = request.agent
        scrubber, _ = settings(agent)
        if not request.finished:  # else already exported: the event carries its ids
            request.span.record_exception(exc, scrubber=scrubber, error=True)
            request.errored = True
        event = _build(agent, exc, False, "error", request, scrubber, {})
        if event is not None:
            _send(agent, event, exc, request, scrubber, span=request.span)
    except Exception:
        log.exception("spyglass: could not report an exception")


def capture_uncaught(exc, mechanism, contexts=None):
    """An exception nothing caught, met by the hook named ``mechanism`` (see
    spyglass.instrument.unhandled): an error event with ``handled`` false and
    ``mechanism``, unless the exception was reported already (by the request it failed,
    or a ``capture_exception``). Returns the event id, or None."""
    if not isinstance(exc, Exception):
        return None
    try:
        return _capture(exc, False, {"contexts": contexts} if contexts else {}, mechanism)
    except Exception:
        log.exception("spyglass: could not report an unhandled exception")
        return None


def capture_request_message(request, message, level, **context):
    """A message about the request itself (a 404 under report_404)."""
    try:
        return _message(request.agent, request, message, level, context, span=request.span)
    except Exception:
        log.exception("spyglass: could not report a request message")
        return None


# -- the pipeline ---------------------------------------------------------------------------

def _capture(exc, handled, context, mechanism=None):
    agent = process.agent
    if agent is None or suppressed.get():
        return None
    request = scope_module.current_request()
    if request is not None:
        if request.already_captured(exc):
            return None
        request.captured_exception(exc)
    elif _recently_propagated(exc):
        return None
    scrubber, _ = settings(agent)
    span = current_span()
    if span is not None and hasattr(span, "add_event"):
        span.record_exception(exc, scrubber=scrubber, error=False)
    level = str(context.get("level") or "error")
    event = _build(agent, exc, handled, level, request, scrubber, context)
    if event is None:
        return None
    if mechanism:
        event["mechanism"] = mechanism
    return _send(agent, event, exc, request, scrubber, span=span)


def _build(agent, exc, handled, level, request, scrubber, context):
    config = agent.config
    local_vars = config.report_local_vars
    if request is not None:
        override = request.option("report_local_vars")
        if override is not None:
            local_vars = truthy(override)
    event = build_error_event(exc, handled=handled, level=level, report_local_vars=local_vars,
                              in_app_include=config.in_app_include,
                              in_app_exclude=config.in_app_exclude, scrubber=scrubber)
    _decorate(event, agent, scrubber, request, context)
    return event


def _decorate(event, agent, scrubber, request, context):
    """Add what the scopes, the request and the caller know to ``event``."""
    user, tags, contexts, breadcrumbs, fingerprint = scope_module.current().merged()
    if request is not None:
        if user is None:
            user = request.user_info()
        group = request.option("group_string")
        if group:
            fingerprint = [str(group)]
        message = request.option("message")
        if message:
            contexts["report"] = {"message": str(message)}
        described = request.describe(scrubber)
        if described:
            event["request"] = described
    if context:
        user = context.get("user") or user
        tags.update(context.get("tags") or {})
        contexts.update(context.get("contexts") or {})
        fingerprint = context.get("fingerprint") or fingerprint
        extra = {key: value for key, value in context.items() if key not in _KNOWN_CONTEXT_KEYS}
        if extra:
            contexts["extra"] = extra
    user = _allowed_user(user, agent.config.send_default_pii, scrubber)
    if user:
        event["user"] = user
    if tags:
        event["tags"] = {str(k): _plain(v) for k, v in scrubber.mapping(tags).items()}
    if contexts:
        event["contexts"] = _jsonable(scrubber.mapping(contexts))
    if breadcrumbs:
        event["breadcrumbs"] = _jsonable(scrubber.mapping(breadcrumbs))
    if fingerprint:
        event["fingerprint"] = fingerprint_of(event, custom=[str(part) for part in fingerprint])


def _allowed_user(user, send_pii, scrubber):
    """Only the id, unless send_default_pii: then every field, e-mail addresses included
    (not taken for secrets found in free text), but still none under a secret key."""
    if not user:
        return None
    if send_pii:
        return {str(key): FILTERED if scrubber.is_secret_key(key) else _plain(value)
                for key, value in user.items()}
    user_id = user.get("id")
    return {"id": scrubber.text(str(user_id))} if user_id not in (None, "") else None


def _send(agent, event, exc, request, scrubber, span=None):
    event["event_id"] = os.urandom(16).hex()
    event = _filtered(event)
    if event is None:
        return None
    from ..report import otlp

    attributes = {"event.name": EVENT_NAME, "spyglass.error.fingerprint": str(event.get("fingerprint", ""))}
    if exc is not None:
        attributes["exception.type"] = _qualified_type(event)
        attributes["exception.message"] = str(event.get("message", ""))
        attributes["exception.stacktrace"] = format_stacktrace(exc, scrubber=scrubber,
                                                               limit=otlp.MAX_STRING)
    user = event.get("user")
    if isinstance(user, dict) and user.get("id"):
        attributes["enduser.id"] = str(user["id"])
    if request is not None and request.route_name():
        attributes["http.route"] = request.route_name()
    if span is None:
        span = request.span if request is not None else current_span()
    trace_id = span_id = 0
    if span is not None and hasattr(span, "local"):
        trace_id, span_id = span.local.trace_id, span.span_id
    level = str(event.get("level", "error")).lower()
    record = otlp.log_record(time.time_ns(), SEVERITY.get(level, 17), level.upper(),
                             _encoded_within(event, otlp.MAX_STRING), attributes,
                             trace_id, span_id)
    agent.reporter.submit_log(record)
    return event.get("event_id")


def _filtered(event):
    """before_send: None drops the event; if the filter raises, the event goes unchanged."""
    function = _before_send
    if function is None:
        agent = process.agent
        function = settings(agent)[1] if agent is not None else None
    if function is None:
        return event
    try:
        result = function(copy.deepcopy(event))
    except Exception:
        _log_filter_failure(function, "raised")
        return event
    if result is None or isinstance(result, dict):
        return result
    _log_filter_failure(function, f"returned {type(result).__name__}, not a dict or None")
    return event


def _log_filter_failure(function, what):
    if id(function) in _failed_filters:
        return
    _failed_filters.add(id(function))
    log.warning("spyglass: before_send %r %s; events are sent unfiltered", function, what,
                exc_info=what == "raised")


# -- the body's size -------------------------------------------------------------------------
# The exporter cuts any string past its cap; a cut JSON body would no longer parse. So the
# event gives up its least useful parts first, until its JSON fits.

_KEEP_FRAMES_HEAD, _KEEP_FRAMES_TAIL = 5, 20


def _encoded_within(event, limit):
    text = _encoded(event)
    if len(text) <= limit:
        return text
    for shrink in (_drop_library_vars, _drop_vars, _drop_outer_context, _drop_breadcrumbs,
                   _drop_middle_frames, _drop_request_and_contexts):
        shrink(event)
        text = _encoded(event)
        if len(text) <= limit:
            return text
    for entry in _entries(event):  # what is left: type, message, where it broke
        entry["frames"] = entry.get("frames", [])[-3:]
        entry["message"] = str(entry.get("message", ""))[:1024]
    event["chain"], event["group"] = event.get("chain", [])[:3], []
    text = _encoded(event)
    return text if len(text) <= limit else _encoded(
        {key: event.get(key) for key in ("type", "module", "message", "fingerprint", "handled",
                                         "level", "timestamp", "event_id")}
        | {"frames": [], "chain": [], "group": []})


def _encoded(event):
    return json.dumps(event, default=str, ensure_ascii=False)


def _entries(event):
    """The event and every exception described in it (chain links, group members)."""
    pending = [event]
    while pending:
        entry = pending.pop()
        yield entry
        pending.extend(entry.get("chain") or ())
        pending.extend(entry.get("group") or ())


def _frames(event):
    for entry in _entries(event):
        yield from entry.get("frames") or ()


def _drop_library_vars(event):
    for frame in _frames(event):
        if not frame.get("in_app"):
            frame.pop("vars", None)


def _drop_vars(event):
    for frame in _frames(event):
        frame.pop("vars", None)


def _drop_outer_context(event):
    """Source lines around the call are kept only for each exception's innermost frame."""
    for entry in _entries(event):
        for frame in (entry.get("frames") or [])[:-1]:
            frame["pre_context"], frame["post_context"] = [], []


def _drop_breadcrumbs(event):
    if event.get("breadcrumbs"):
        event["breadcrumbs"] = event["breadcrumbs"][-10:]


def _drop_middle_frames(event):
    for entry in _entries(event):
        frames = entry.get("frames") or []
        if len(frames) > _KEEP_FRAMES_HEAD + _KEEP_FRAMES_TAIL:
            entry["frames"] = frames[:_KEEP_FRAMES_HEAD] + frames[-_KEEP_FRAMES_TAIL:]


def _drop_request_and_contexts(event):
    event.pop("breadcrumbs", None)
    event.pop("contexts", None)
    request = event.get("request")
    if request:
        event["request"] = {key: request[key] for key in ("method", "url", "route")
                            if key in request}


# -- the last exception that left a request ------------------------------------------------
# A server logs what escaped the app (gunicorn, uvicorn) after the request's scope is gone;
# the logging integration asks here so that the exception is not reported twice.

_propagated: ContextVar = ContextVar("spyglass.propagated", default=None)


def note_propagated(exc):
    _propagated.set(exc)


def forget_propagated(exc):
    """Undo ``note_propagated(exc)`` if nothing has asked about it since."""
    if _propagated.get() is exc:
        _propagated.set(None)


def _recently_propagated(exc):
    if _propagated.get() is exc:
        _propagated.set(None)
        return True
    return False


# -- small helpers --------------------------------------------------------------------------

def _qualified_type(event):
    module, name = event.get("module") or "", event.get("type") or ""
    return name if module in ("", "builtins", "__main__") else f"{module}.{name}"


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<unprintable>"


def _plain(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else _safe_str(value)


def _jsonable(value):
    """Through JSON and back: what cannot be encoded becomes its str()."""
    return json.loads(json.dumps(value, default=_safe_str))
