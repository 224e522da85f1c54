"""spyglass: a zero-code application performance sensor.

Usually started with ``AUTOWRAPT_BOOTSTRAP=runtime`` (or ``flask``, ``django``, ``fastapi``,
``spyglass``). For those who prefer code::

    import spyglass
    spyglass.init(service_name="shop", endpoint="http://collector:4318")

This module stays small and imports nothing heavy: autowrapt imports it at startup.
"""
import logging as _logging

__version__ = "0.1.0"

# A library's logger: nothing of spyglass's reaches stderr through Python's last-resort
# handler. The app's own logging configuration (or ``debug``) decides what is shown.
_logging.getLogger("spyglass").addHandler(_logging.NullHandler())


def init(config_file=None, **settings):
    """Start the sensor with these settings (they win over ini file and environment).
    Returns the agent, or None when disabled. Safe to call more than once."""
    from . import bootstrap

    return bootstrap.start(started_by="code", config_file=config_file, **settings)


def tracer():
    """spyglass's OpenTracing tracer (starting the sensor with defaults if needed)."""
    from . import agent, bootstrap

    running = agent.get() or bootstrap.start(started_by="code")
    if running is None:
        import opentracing

        return opentracing.Tracer()
    return running.tracer


def flush(timeout=None) -> bool:
    """Export everything queued now; True when it all went out in time."""
    from . import agent

    running = agent.get()
    return running.reporter.flush(timeout) if running else True


# -- errors and scopes (spyglass.errors.capture, spyglass.errors.scope) -------------------------

def capture_exception(exc=None, **context):
    """Send an error event for ``exc`` (default: the exception being handled). ``context``:
    ``tags``, ``user``, ``contexts``, ``fingerprint``, ``level``, ``handled``; other
    keywords go into the event's ``extra`` context. Returns the event id or None."""
    from .errors import capture

    return capture.capture_exception(exc, **context)


def capture_message(message, level="info", **context):
    """Send ``message`` as an event of ``level``; returns the event id or None."""
    from .errors import capture

    return capture.capture_message(message, level, **context)


def set_user(user=None, **fields):
    """The user for events from here on (this request, or the enclosing ``scope()``):
    a dict such as ``{"id": 42}``, or keywords; None clears it. Only the id is sent
    unless ``send_default_pii`` is on."""
    from .errors import scope as scope_module

    scope_module.current().set_user({**(user or {}), **fields})


def set_tag(key, value):
    from .errors import scope as scope_module

    scope_module.current().set_tag(key, value)


def set_tags(tags):
    from .errors import scope as scope_module

    current = scope_module.current()
    for key, value in dict(tags).items():
        current.set_tag(key, value)


def set_context(name, values):
    """A named block of data (a dict) for events; None removes it."""
    from .errors import scope as scope_module

    scope_module.current().set_context(name, values)


def add_breadcrumb(message=None, category=None, level="info", data=None):
    from .errors import scope as scope_module

    scope_module.current().add_breadcrumb(message, category, level, data)


def scope():
    """``with spyglass.scope() as s:``: user, tags, contexts and breadcrumbs set inside
    stay inside (per thread and per asyncio task)."""
    from .errors import scope as scope_module

    return scope_module.isolated()


def set_request_options(**options):
    """Per-request controls for the request being handled (the API twin of the WSGI
    environ's ``spyglass.*`` keys): ``username``, ``report_local_vars``, ``ignore_slow``,
    ``ignore_error``, ``view_name``, ``group_string``, ``message``, ``force_logs``,
    ``force_send``. Returns False outside a traced request; an unknown name raises
    TypeError, with or without the sensor running."""
    from .errors import scope as scope_module
    from .web import check_options

    check_options(options)
    request = scope_module.current_request()
    if request is None:
        return False
    request.set_options(options)
    return True


def background_task(name):
    """A unit of work as a trace of its own (a root span; a child span inside an active
    trace), its calls folded and capped as a request's: ``@spyglass.background_task("sync")``
    on a function or an ``async def``, or ``with spyglass.background_task("sync"):`` (also
    ``async with``). Outside it, and outside requests, only slow or failed calls are traces."""
    from .work import BackgroundTask

    return BackgroundTask(name)


def __getattr__(name):
    """``spyglass.wsgi`` and ``spyglass.asgi`` (the middleware), imported when first used:
    ``import spyglass; app = spyglass.wsgi.middleware(app)``."""
    if name in ("wsgi", "asgi"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_before_send(function):
    """``function(event)`` runs on every error event before it is sent: return None to
    drop it, or the (changed) event. If it raises, the event is sent unchanged."""
    from .errors import capture

    capture.set_before_send(function)
