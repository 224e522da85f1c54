"""spyglass's OpenTracing 2.x tracer.

The same tracer serves two callers: the app through the OpenTracing API
(``opentracing.tracer``), and spyglass's instrumentation, which uses the cheaper
``start_child`` / ``record_call`` to skip what a leaf call does not need.
"""
import time

import opentracing
from opentracing import Format, UnsupportedFormatException, InvalidCarrierException
from opentracing import SpanContextCorruptedException

from . import propagation
from .. import process
from .context import Scope, ScopeManager, activate_scope, get_active_scope
from .sampling import Sampler
from .span import INTERNAL, KIND_BY_TAG, STATUS_UNSET, RootSpan, Span, SpanContext
from .span import new_root_span, new_span

_time_ns = time.time_ns
_fork_marker = process.fork_marker
_getrandbits = process._getrandbits
_TEXT_FORMATS = (Format.TEXT_MAP, Format.HTTP_HEADERS)


def _discard(spans):
    pass


class Tracer(opentracing.Tracer):
    def __init__(self, export=_discard, sample_rate=1.0, max_spans_per_trace=1000,
                 scope_manager=None, export_lone_root=None):
        """``export(spans)`` takes each finished local trace, a list of spans. A trace that
        is its root span alone, the commonest, goes to ``export_lone_root(span)`` where one
        is given (no list made for it: the reporter's queue takes either)."""
        super().__init__(scope_manager or ScopeManager())
        self.export = export
        self.export_lone_root = export_lone_root or (lambda span: export([span]))
        self.sampler = Sampler(sample_rate)
        self.max_spans_per_trace = max_spans_per_trace

    # -- OpenTracing API ------------------------------------------------------------------

    def start_active_span(self, operation_name, child_of=None, references=None, tags=None,
                          start_time=None, ignore_active_span=False, finish_on_close=True):
        manager = self._scope_manager
        if (child_of is None and references is None and tags is None and start_time is None
                and not ignore_active_span and manager.__class__ is ScopeManager):
            # The common case, flattened: child of the active span, activated at once. What
            # the calls here would do is written out, as a new trace's root and the scope:
            # a Python call costs CPython 3.11 about as much as the attributes it sets
            # (tests/test_written_out_copies.py holds the copies equal to the functions).
            active = get_active_scope()
            if active is None:  # a new trace: _new_local_root and new_root_span
                if not _fork_marker[0]:
                    process.reseed()
                sampler = self.sampler
                span = RootSpan()
                span._tracer = self
                span.trace_id = _getrandbits(128) or 1
                span.sampled = sampler.rate >= 1.0 or sampler.sample_new_trace()
                span.span_id = _getrandbits(64) or 1
                span.name = operation_name
                span.start_ns = _time_ns()
                span.kind = INTERNAL
                span.attributes = {}
                span.parent_id = span.baggage = span._context = span.events = None
                span.summary = span.links = None
                span.tracestate = span.spans = ()
                span.end_ns = 0
                span.status = STATUS_UNSET
                span.status_message = ""
                span.keep = False
            else:
                parent = active.span
                parent_class = parent.__class__
                if parent_class is RootSpan or parent_class is Span:
                    span = new_span(self, parent if parent_class is RootSpan else parent.local,
                                    _getrandbits(64) or 1, parent.span_id, operation_name,
                                    _time_ns(), INTERNAL, parent.baggage)
                else:  # a span from elsewhere, activated through our scope manager
                    span = self._new_span(operation_name, parent, _time_ns(), INTERNAL)
            scope = Scope()  # context.activate, written out
            scope._manager = manager
            scope.span = span
            scope._finish_on_close = finish_on_close
            scope._token = activate_scope(scope)
            return scope
        span = self.start_span(operation_name, child_of, references, tags, start_time,
                               ignore_active_span)
        return manager.activate(span, finish_on_close)

    def start_span(self, operation_name=None, child_of=None, references=None, tags=None,
                   start_time=None, ignore_active_span=False):
        parent = child_of
        if parent is None and references:
            parent = _parent_from_references(references)
        if parent is None and not ignore_active_span:
            scope = get_active_scope()
            if scope is not None:
                parent = scope.span
        start_ns = _time_ns() if start_time is None else int(start_time * 1e9)
        span = self._new_span(operation_name, parent, start_ns, INTERNAL)
        if tags:
            for key, value in tags.items():
                span.set_tag(key, value)
        return span

    def inject(self, span_context, format, carrier):
        if format in _TEXT_FORMATS:
            if not hasattr(carrier, "__setitem__"):
                raise InvalidCarrierException("carrier must be a mutable mapping")
            propagation.inject(carrier, span_context.trace_id, span_context.span_id,
                               span_context.sampled, span_context.tracestate,
                               span_context.baggage, span_context.random_trace_id)
        elif format == Format.BINARY:
            if not isinstance(carrier, bytearray):
                raise InvalidCarrierException("carrier must be a bytearray")
            carrier.extend(propagation.to_binary(span_context.trace_id, span_context.span_id,
                                                 span_context.sampled, span_context.baggage,
                                                 span_context.random_trace_id))
        else:
            raise UnsupportedFormatException(format)

    def extract(self, format, carrier):
        if format in _TEXT_FORMATS:
            if not hasattr(carrier, "items") and not isinstance(carrier, (list, tuple)):
                raise InvalidCarrierException("carrier must be a mapping")
            found = propagation.extract(carrier)
        elif format == Format.BINARY:
            if not isinstance(carrier, (bytes, bytearray)):
                raise InvalidCarrierException("carrier must be bytes or a bytearray")
            found = propagation.from_binary(carrier) if carrier else None
            if carrier and found is None:
                raise SpanContextCorruptedException("unreadable binary trace context")
        else:
            raise UnsupportedFormatException(format)
        if found is None:
            return None
        return _remote_context(found)

    # -- for spyglass's instrumentation ---------------------------------------------------

    def start_child(self, name, kind=INTERNAL, parent=None):
        """A span under ``parent`` (default: the active span), not activated."""
        if parent is None:
            scope = get_active_scope()
            parent = scope.span if scope is not None else None
        return self._new_span(name, parent, _time_ns(), kind)

    def start_server_span(self, name, headers=None, kind=KIND_BY_TAG["server"]):
        """A request's local root, continuing the W3C context found in ``headers``."""
        parent = None
        if headers is not None:
            found = propagation.extract(headers)
            if found is not None:
                parent = _remote_context(found)
        return self._new_local_root(name, parent, _time_ns(), kind)

    def record_call(self, parent, name, kind, start_ns, end_ns, attributes, keep=False):
        """Record an already finished leaf call under ``parent`` (a Span).

        The cheapest way to trace a call: nothing is activated, and in an unsampled trace
        nothing is made at all unless the call is to be kept (slow or failed).
        """
        local = parent if parent.__class__ is RootSpan else parent.local
        if not (local.sampled or keep):
            return None
        span = new_span(self, local, _getrandbits(64) or 1, parent.span_id, name, start_ns,
                        kind, parent.baggage, attributes)
        span.end_ns = end_ns
        if keep:
            span.keep = True
        spans = local.spans
        if spans and len(spans) < self.max_spans_per_trace:
            spans.append(span)  # RootSpan.add, written out for the common case (drift-tested)
        else:
            local.add(span)
        return span

    # -- internals ------------------------------------------------------------------------

    def _new_span(self, name, parent, start_ns, kind):
        parent_class = parent.__class__
        if parent_class is RootSpan or parent_class is Span:
            return new_span(self, parent if parent_class is RootSpan else parent.local,
                            _getrandbits(64) or 1, parent.span_id, name, start_ns, kind,
                            parent.baggage)
        if isinstance(parent, Span):
            parent = parent.context
        if isinstance(parent, SpanContext) and parent.local is not None:
            # A local span's context, passed as child_of: join its local trace.
            return new_span(self, parent.local, _getrandbits(64) or 1, parent.span_id, name,
                            start_ns, kind, parent._baggage)
        return self._new_local_root(name, parent, start_ns, kind)

    def _new_local_root(self, name, parent, start_ns, kind):
        """A fresh trace, or the local part of a trace that came from elsewhere."""
        if not _fork_marker[0]:  # a fork that skipped the at-fork hooks (uWSGI)
            process.reseed()
        if parent is None or not isinstance(parent, SpanContext):
            # None, or another tracer's context, which carries nothing we can continue.
            sampler = self.sampler
            sampled = sampler.rate >= 1.0 or sampler.sample_new_trace()
            return new_root_span(self, _getrandbits(128) or 1, sampled, _getrandbits(64) or 1,
                                 name, start_ns, kind)
        # Parent-based sampling: the caller decided.
        span = new_root_span(self, parent.trace_id, parent.sampled, _getrandbits(64) or 1,
                             name, start_ns, kind)
        span.parent_id = parent.span_id
        if parent._baggage:
            span.baggage = parent._baggage
        if parent.tracestate:
            span.tracestate = parent.tracestate
        if not parent.random_trace_id:  # carried as the caller set it
            span.random_trace_id = False
        return span


def _remote_context(found):
    """The SpanContext of what ``propagation`` extracted from a carrier."""
    return SpanContext(found.trace_id, found.span_id, found.sampled, found.baggage or None,
                       found.tracestate, None, found.random_trace_id)


def _parent_from_references(references):
    # The first child_of reference wins; a follows_from reference is a parent if alone.
    for reference in references:
        if reference.type == opentracing.ReferenceType.CHILD_OF:
            return reference.referenced_context
    return references[0].referenced_context
