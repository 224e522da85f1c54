"""The active span, kept in a ContextVar so each thread and asyncio task sees its own.

A lean OpenTracing ScopeManager: one ContextVar lookup to read the active scope, one set to
activate, one reset to close. A scope closed from another context (a task that inherited
it) cannot reset the token there; it sets back the scope that was active before instead,
so closing never raises inside the app.
"""
from contextvars import ContextVar, Token

import opentracing

_active_scope: ContextVar = ContextVar("spyglass.active_scope", default=None)
get_active_scope = _active_scope.get
activate_scope = _active_scope.set  # returns the Token that deactivates it
reset_active_scope = _active_scope.reset

from ..process import suppressed  # noqa: F401  (re-exported for instrumentation)

_UNSET = Token.MISSING


def current_span():
    """The active span of this thread or task, or None."""
    scope = _active_scope.get()
    return scope.span if scope is not None else None


class Scope(opentracing.Scope):
    # ``span`` is a slot, not the base class's property: it is read on every span.
    __slots__ = ("_manager", "span", "_finish_on_close", "_token")
    # Made by activate(), for the reason spans are made by new_span() (see trace.span).
    __init__ = object.__init__

    def close(self):
        # Only the active scope may be closed (OpenTracing's rule); anything else is a no-op.
        if _active_scope.get() is not self:
            return
        try:
            _active_scope.reset(self._token)
        except (ValueError, RuntimeError):
            self._set_back()
        if self._finish_on_close:
            self.span.finish()

    def _set_back(self):
        # The token is another context's (this scope was inherited), or already used.
        previous = self._token.old_value
        _active_scope.set(None if previous is _UNSET else previous)

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
        # close(), written out: this runs once per span (tests/test_written_out_copies.py).
        if _active_scope.get() is not self:
            return
        try:
            _active_scope.reset(self._token)
        except (ValueError, RuntimeError):
            self._set_back()
        if self._finish_on_close:
            span.finish()


def activate(manager, span, finish_on_close):
    """A Scope of ``manager`` for ``span``, active from now on in this thread or task.
    Tracer.start_active_span writes this out: keep the two alike (the drift tests in
    tests/test_written_out_copies.py say when they are not)."""
    scope = Scope()
    scope._manager = manager
    scope.span = span
    scope._finish_on_close = finish_on_close
    scope._token = activate_scope(scope)
    return scope


class ScopeManager(opentracing.ScopeManager):
    def activate(self, span, finish_on_close):
        return activate(self, span, finish_on_close)

    @property
    def active(self):
        return _active_scope.get()
