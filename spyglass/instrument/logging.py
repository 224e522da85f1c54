"""stdlib logging: records become OTLP log records, breadcrumbs and error events.

``Logger.callHandlers`` is patched: every record a logger emits passes there once, after
its level and filters, whatever handlers are configured. Patching this one method (not
adding a handler) leaves the app's logging set-up exactly as it was: ``basicConfig()``
still configures, ``lastResort`` still prints.

Each record gets ``trace_id`` and ``span_id`` attributes (hex; zeros outside a span) for
the app's formatters. Records at or above ``logging_level`` are also sent as OTLP log
records tied to the current span (held back until the request errs or is slow under
``logging_on_error``), added as breadcrumbs, and those with ``exc_info`` go through
``capture_exception``. Records below the level cost one comparison more. Records of the
``spyglass`` logger, and anything logged on spyglass's own threads or while spyglass is
handling a record, are left alone: the sensor never feeds on itself. What other libraries
log on spyglass's own threads (httpx logs each export at INFO) does not exist without the
sensor: it reaches no handler of the app.
"""
import threading

from ._patch import Patch

SUPPORTS = None  # the standard library's own
TIMING = None
PATCHES = (
    Patch("logging", "Logger", callHandlers="forwarding_records"),
)

NO_TRACE_ID = "0" * 32
NO_SPAN_ID = "0" * 16

_busy = threading.local()


def forwarding_records(call_handlers, agent):
    level = agent.config.logging_level
    # logging is imported before the app starts: what the wrapper needs is imported on
    # the first record, so that starting the sensor stays cheap.
    lazy = {}

    def load():
        from ..trace.context import get_active_scope, suppressed

        # Filled in one step: a record logged meanwhile (by another thread, or by what
        # _forwarder imports) must find the cache empty, not half made.
        loaded = {"active": get_active_scope, "ours": suppressed.get,
                  "forward": _forwarder(agent)}
        lazy.update(loaded)
        return loaded

    def callHandlers(self, record):
        loaded = lazy or load()
        if loaded["ours"]() and not record.name.startswith("spyglass"):
            return  # a library logging on spyglass's thread (httpx, each export at INFO)
        if "trace_id" not in record.__dict__:
            scope = loaded["active"]()
            span = scope.span if scope is not None else None
            if span is not None and hasattr(span, "local"):
                record.trace_id = f"{span.local.trace_id:032x}"
                record.span_id = f"{span.span_id:016x}"
            else:
                record.trace_id = NO_TRACE_ID
                record.span_id = NO_SPAN_ID
        call_handlers(self, record)
        if record.levelno >= level:
            loaded["forward"](record)

    return callHandlers


def _forwarder(agent):
    from ..errors import capture
    from ..trace.context import get_active_scope, suppressed
    from ..report import otlp
    from ..errors import scope as scope_module

    config = agent.config
    submit_log = agent.reporter.submit_log
    hold_back = config.logging_on_error

    def forward(record):
        name = record.name
        if (name == "spyglass" or name.startswith("spyglass.") or suppressed.get()
                or getattr(_busy, "active", False)):
            return
        _busy.active = True
        try:
            scrubber = agent.scrubber
            message = scrubber.text(_message_of(record))
            level_name = record.levelname.lower()
            scope = scope_module.current()
            request = scope.request
            trace_id = span_id = 0
            active = get_active_scope()
            if active is not None and hasattr(active.span, "local"):
                trace_id, span_id = active.span.local.trace_id, active.span.span_id
            encoded = otlp.log_record(
                int(record.created * 1e9), _severity(record.levelno), record.levelname,
                message, _attributes(record), trace_id, span_id)
            if not (hold_back and request is not None and request.hold_log(encoded)):
                submit_log(encoded)
            exc_info = record.exc_info
            if exc_info and exc_info[1] is not None:
                capture.capture_exception(exc_info[1], level=level_name,
                                          contexts={"log": {"logger": name, "message": message}})
            scope.add_breadcrumb(message=message, category=name, level=level_name,
                                 timestamp=record.created)
        except Exception:
            import logging

            logging.getLogger("spyglass").debug("spyglass: could not forward a log record",
                                                exc_info=True)
        finally:
            _busy.active = False

    return forward


def _message_of(record):
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)


def _attributes(record):
    attributes = {
        "log.logger": record.name,
        "code.filepath": record.pathname,
        "code.function": record.funcName,
        "code.lineno": record.lineno,
        "thread.name": record.threadName,
    }
    return attributes


def _severity(levelno):
    """OpenTelemetry's severity numbers: DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21."""
    if levelno >= 50:
        return 21
    if levelno >= 40:
        return 17
    if levelno >= 30:
        return 13
    if levelno >= 20:
        return 9
    if levelno >= 10:
        return 5
    return 1
