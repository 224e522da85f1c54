"""The active span, kept in a ContextVar so each thread and asyncio task sees its own.

A lean OpenTracing ScopeManager: one ContextVar lookup to read the active scope, one set to
activate or close. Closing restores the scope that was active before (not a token reset),
so a scope closed from another context cannot raise inside the app.
"""
from contextvars import ContextVar

import opentracing

_active_scope: ContextVar = ContextVar("spyglass.active_scope", default=None)
get_active_scope = _active_scope.get

from ..process import suppressed  # noqa: F401  (re-exported for instrumentation)


def current_span():
    """The active span of this thread or task, or None."""
    scope = _active_scope.get()
    return scope.span if scope is not None else None


_UNKNOWN = object()


class Scope(opentracing.Scope):
    # ``span`` is a slot, not the base class's property: it is read on every span.
    __slots__ = ("_manager", "span", "_finish_on_close", "_previous")

    def __init__(self, manager, span, finish_on_close, previous=_UNKNOWN):
        # ``previous``: the active scope, when the caller has just read it anyway.
        self._manager = manager
        self.span = span
        self._finish_on_close = finish_on_close
        self._previous = _active_scope.get() if previous is _UNKNOWN else previous
        _active_scope.set(self)

    def close(self):
        # Only the active scope may be closed (OpenTracing's rule); anything else is a no-op.
        if _active_scope.get() is not self:
            return
        _active_scope.set(self._previous)
        if self._finish_on_close:
            self.span.finish()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        span = self.span
        if exc_value is not None:
            record = getattr(span, "record_exception", None)
            if record is not None:
                record(exc_value)
            else:
                opentracing.Span._on_error(span, exc_type, exc_value, traceback)
        # close(), inlined: this runs once per span.
        if _active_scope.get() is not self:
            return
        _active_scope.set(self._previous)
        if self._finish_on_close:
            span.finish()


class ScopeManager(opentracing.ScopeManager):
    def activate(self, span, finish_on_close):
        return Scope(self, span, finish_on_close)

    @property
    def active(self):
        return _active_scope.get()
