"""Spans, span contexts and the local part of a trace.

The first span of a trace in this process, its local root (a ``RootSpan``), also holds what
the trace's spans share: the trace id, the sampling decision, and the finished spans, until
it finishes itself and hands them to the exporter as one unit. Every span's ``local`` is
that root. An unsampled trace keeps only what must be seen anyway: its root when that is
slow, errored or forced, and calls marked ``keep`` (slow or failed). Everything else about
an unsampled span is a few attribute sets.
"""
import time

import opentracing

from ..process import _getrandbits

# OTLP span kinds
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
KIND_BY_TAG = {"server": SERVER, "client": CLIENT, "producer": PRODUCER, "consumer": CONSUMER}

# OTLP status codes
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

MAX_STACKTRACE = 16 * 1024

_time_ns = time.time_ns


class SpanContext(opentracing.SpanContext):
    """Ids, the W3C flags (sampled, random trace id), baggage and tracestate; immutable
    once made.

    ``local`` links a context to its process-local trace, so that ``child_of=span.context``
    still joins the same local trace; contexts extracted from a carrier have none.
    ``random_trace_id`` is False unless known true: a trace started here, or a caller's
    context that said so.
    """

    __slots__ = ("trace_id", "span_id", "sampled", "_baggage", "tracestate", "local",
                 "random_trace_id")

    def __init__(self, trace_id, span_id, sampled=True, baggage=None, tracestate=(), local=None,
                 random_trace_id=False):
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self._baggage = baggage
        self.tracestate = tracestate
        self.local = local
        self.random_trace_id = random_trace_id

    @property
    def baggage(self):
        return self._baggage if self._baggage is not None else {}

    def with_baggage_item(self, key, value):
        baggage = dict(self.baggage)
        baggage[key] = value
        return SpanContext(self.trace_id, self.span_id, self.sampled, baggage,
                           self.tracestate, self.local, self.random_trace_id)

    def __repr__(self):
        return (f"SpanContext(trace_id={self.trace_id:032x}, span_id={self.span_id:016x}, "
                f"sampled={self.sampled})")


class Span(opentracing.Span):
    # Every attribute is a slot, set when the span is made: on CPython 3.11 a read that
    # finds only a class-level default is not specialized and costs three times a slot's,
    # and slots make smaller objects. The SpanContext is made only when asked for.
    __slots__ = ("_tracer", "local", "span_id", "parent_id", "baggage", "name", "start_ns",
                 "kind", "attributes", "end_ns", "events", "status", "status_message", "keep",
                 "_context")
    local_root = False  # True on a RootSpan
    links = None  # only a local root may link to other spans (RootSpan.links)
    # Made by new_span() (a RootSpan by new_root_span()), not by a call with arguments: in
    # CPython 3.11 a class whose __init__ is Python code costs a round trip through C on
    # every call, more than all the attributes it sets; with object's own __init__ a class
    # call stays in C, and a function that sets the attributes is an inlined Python call.
    __init__ = object.__init__

    @property
    def context(self):
        context = self._context
        if context is None:
            local = self.local
            context = self._context = SpanContext(local.trace_id, self.span_id, local.sampled,
                                                  self.baggage, local.tracestate, local,
                                                  local.random_trace_id)
        return context

    @property
    def trace_id(self):
        return self.local.trace_id

    # -- OpenTracing API ------------------------------------------------------------------

    @property
    def operation_name(self):
        return self.name

    def set_operation_name(self, operation_name):
        self.name = operation_name
        return self

    def set_tag(self, key, value):
        if key in _SPECIAL_TAGS:
            _SPECIAL_TAGS[key](self, value)
        else:
            self.attributes[key] = value
        return self

    def log_kv(self, key_values, timestamp=None):
        when = _time_ns() if timestamp is None else int(timestamp * 1e9)
        error = key_values.get("error.object")
        if isinstance(error, BaseException):
            self.record_exception(error, when)
            return self
        fields = dict(key_values)
        name = str(fields.pop("event", "log"))
        if name == "error":
            self.mark_error(str(fields.get("message", "")))
        self.add_event(name, fields, when)
        return self

    def set_baggage_item(self, key, value):
        baggage = dict(self.baggage) if self.baggage else {}
        baggage[key] = value
        self.baggage = baggage
        self._context = None
        return self

    def get_baggage_item(self, key):
        return self.baggage.get(key) if self.baggage else None

    def finish(self, finish_time=None):
        if self.end_ns:
            return
        self.end_ns = _time_ns() if finish_time is None else int(finish_time * 1e9)
        local = self.local
        if local.sampled or self.keep:
            local.add(self)

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_value is not None:
            self.record_exception(exc_value)
        self.finish()

    # -- spyglass's own -------------------------------------------------------------------

    def add_event(self, name, attributes=None, when=None):
        if self.events is None:
            self.events = []
        self.events.append((_time_ns() if when is None else when, name, attributes or {}))

    def mark_error(self, message=""):
        """Status ERROR; the span (and so its trace) is exported even if unsampled."""
        self.status = STATUS_ERROR
        self.status_message = message
        self.keep = True

    def record_exception(self, exc, when=None, scrubber=None, error=True, quoted=True):
        """An ``exception`` event by OpenTelemetry's conventions; status ERROR when
        ``error`` (else only kept). The message and stack are scrubbed as error events are:
        a driver's error can quote the data it refused. ``quoted`` False: no message at all,
        the type and frames only (a library whose errors quote keys: memcached's)."""
        from ..redact.stacktrace import DEFAULT_SCRUBBER, format_stacktrace  # the error path only

        scrubber = scrubber or DEFAULT_SCRUBBER
        kind = type(exc)
        module = kind.__module__
        type_name = kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
        message = scrubber.text(_safe_str(exc)) if quoted else ""
        self.add_event("exception", {
            "exception.type": type_name,
            "exception.message": message,
            "exception.stacktrace": format_stacktrace(exc, scrubber=scrubber, limit=MAX_STACKTRACE,
                                                      message=quoted),
        }, when)
        if error:
            self.mark_error(f"{type_name}: {message}" if message else type_name)
        else:
            self.keep = True

    @property
    def duration_ns(self):
        return (self.end_ns or _time_ns()) - self.start_ns

    def __repr__(self):
        return f"<Span {self.name!r} {self.context!r}>"


class RootSpan(Span):
    """The first span of a trace in this process, and the trace's buffer: the finished
    spans under it wait in ``spans`` until it finishes, and go to the exporter with it.

    Its ``local`` is itself, answered by a property rather than kept in the slot: a span
    referring to itself could only be freed by the cyclic GC. Hot paths that already know
    a parent's class skip the property."""

    __slots__ = ("trace_id", "sampled", "tracestate", "spans", "summary", "links")
    # trace_id: a slot here, not Span's property. parent_id, baggage, tracestate: set by the
    # tracer where a trace continues from elsewhere (a remote parent). summary: a
    # TraceSummary from the trace's first call or dropped span on, else None. links: None,
    # or a list of (trace id, span id) of spans this one follows from without being their
    # child (a task's attempt links to the attempt before it, see add_link).
    local_root = True
    # W3C's random-trace-id flag: our trace ids are random. A trace continued from a caller
    # carries the caller's flag, set on the instance where it is unset (rare): no cost to
    # the spans and traces that start here, where it is read at injection and export only.
    random_trace_id = True

    @property
    def local(self):
        return self

    @property
    def context(self):
        # Kept only while the trace is open: it refers back to this span, and finish()
        # lets go of it so that nothing refers to a finished root but its exporter.
        context = self._context
        if context is None:
            context = SpanContext(self.trace_id, self.span_id, self.sampled, self.baggage,
                                  self.tracestate, self, self.random_trace_id)
            if self.spans is not None:
                self._context = context
        return context

    def finish(self, finish_time=None):
        """Close the trace and export it (or, if unsampled, what must be seen of it)."""
        if self.end_ns:
            return
        self.end_ns = _time_ns() if finish_time is None else int(finish_time * 1e9)
        # Closed. Letting go of the spans (and of the context and the summary, which refer
        # back to this span) breaks the span <-> root cycles, so a finished trace is freed
        # by reference counting, not left to the cyclic GC.
        spans, summary = self.spans, self.summary
        self.spans = self._context = self.summary = None
        if summary is None and self.sampled:
            # The common case: nothing to add to the root. (The exporters are the tracer's
            # attributes, not methods: read as attributes, not called as methods, so that
            # CPython 3.11 specializes the read.)
            if spans:
                spans.append(self)
                export = self._tracer.export
                export(spans)
            else:
                export_lone_root = self._tracer.export_lone_root
                export_lone_root(self)
        elif self.sampled or self.keep or spans:
            self._export_with_summary(spans, summary)

    # -- the trace's buffer -----------------------------------------------------------------

    def add(self, span):
        spans = self.spans
        if spans is None:
            # A child that outlived its root (a background task): ship it on its own.
            self._tracer.export([span])
        elif len(spans) >= self._tracer.max_spans_per_trace:
            summary = self.summary
            if summary is None:
                summary = self.summary = TraceSummary()
            summary.dropped += 1
        elif spans:
            spans.append(span)
        else:
            self.spans = [span]  # the first child

    def fold_fast_call(self, parent_id, category, duration_ns, end_ns, repeat_key):
        """Fold a fast call into the last span added, when that span is the last fast call,
        under the same parent (the span ``parent_id``), with the same ``repeat_key`` (an N+1
        loop): one more ``spyglass.count`` on it, its end moved to the call's, the call
        counted in the aggregates. True when folded; else nothing is done (the call is for
        ``add_fast_call``). Asked before a call's attributes are made: a folded call needs
        none."""
        summary = self.summary
        if summary is None or repeat_key != summary.last_call_key:
            return False
        last = summary.last_call
        spans = self.spans
        if last is None or last.parent_id != parent_id or not spans or spans[-1] is not last:
            return False  # another parent, or something else came in between
        attributes = last.attributes
        attributes["spyglass.count"] = attributes.get("spyglass.count", 1) + 1
        if end_ns > last.end_ns:
            last.end_ns = end_ns
        totals = summary.aggregates.get(category)
        if totals is None:  # not the category of the call folded into (another library's)
            self.count_call(category, duration_ns)
        else:  # count_call, written out: every folded call (held equal by
            totals[0] += 1  # tests/test_written_out_copies.py)
            totals[1] += duration_ns
        return True

    def add_fast_call(self, parent, name, kind, start_ns, end_ns, attributes, category,
                      repeat_key, min_duration_ns):
        """The common case of a leaf call that ``fold_fast_call`` did not fold, in one step:
        sampled, neither slow nor failed. Counted in the aggregates and added as a span of
        its own, which later calls of ``repeat_key`` may fold into (None: never). Returns
        the span."""
        duration = end_ns - start_ns
        # count_call and add, written out: this runs for every call (held equal to them by
        # tests/test_written_out_copies.py)
        summary = self.summary
        if summary is None:
            summary = self.summary = TraceSummary()
        aggregates = summary.aggregates
        totals = aggregates.get(category)
        if totals is None:
            aggregates[category] = [1, duration]
        else:
            totals[0] += 1
            totals[1] += duration
        tracer = self._tracer
        span = new_span(tracer, self, _getrandbits(64) or 1, parent.span_id, name, start_ns,
                        kind, parent.baggage, attributes)
        span.end_ns = end_ns
        spans = self.spans
        if spans and len(spans) < tracer.max_spans_per_trace:
            spans.append(span)
        else:
            self.add(span)
        if repeat_key is not None:  # else never folded into; fold_fast_call sees it last
            summary.last_call = span
            summary.last_call_key = repeat_key
        if min_duration_ns and duration < min_duration_ns:
            if summary.short_calls is None:
                summary.short_calls = []
            summary.short_calls.append((span, min_duration_ns))
        return span

    def add_link(self, trace_id, span_id):
        """Link this span to the span ``span_id`` of trace ``trace_id`` (an OTLP span link:
        related, but not its parent)."""
        if self.links is None:
            self.links = []
        self.links.append((trace_id, span_id))

    def count_call(self, category, duration_ns):
        """Add a call to the request's aggregates (``spyglass.agg.<category>.*`` on the
        root), whether or not the call itself is exported."""
        summary = self.summary
        if summary is None:
            summary = self.summary = TraceSummary()
        aggregates = summary.aggregates
        totals = aggregates.get(category)
        if totals is None:
            aggregates[category] = [1, duration_ns]
        else:
            totals[0] += 1
            totals[1] += duration_ns

    def _export_with_summary(self, spans, summary):
        """Export with what the root says about its trace: aggregates, dropped spans,
        whether it was sampled; without the calls span_min_duration leaves out."""
        attributes = self.attributes
        if summary is not None:
            if summary.short_calls:
                spans = _without_short_calls(spans, summary.short_calls)
            for category, (count, total_ns) in summary.aggregates.items():
                attributes[f"spyglass.agg.{category}.count"] = count
                attributes[f"spyglass.agg.{category}.duration_ms"] = total_ns / 1e6
            if summary.dropped:
                attributes["spyglass.dropped_spans"] = summary.dropped
        if not self.sampled:
            attributes["spyglass.sampled"] = False
        if spans:
            spans.append(self)
        else:  # no children: the () a root starts with
            spans = [self]
        export = self._tracer.export  # an attribute: see finish()
        export(spans)


def new_span(tracer, local, span_id, parent_id, name, start_ns, kind=INTERNAL, baggage=None,
             attributes=None):
    """A span of the local trace whose root is ``local``."""
    span = Span()
    span._tracer = tracer
    span.local = local
    span.span_id = span_id
    span.parent_id = parent_id
    span.baggage = baggage
    span.name = name
    span.start_ns = start_ns
    span.kind = kind
    span.attributes = {} if attributes is None else attributes
    span.end_ns = 0
    span.events = span._context = None
    span.status = STATUS_UNSET
    span.status_message = ""
    span.keep = False
    return span


def new_root_span(tracer, trace_id, sampled, span_id, name, start_ns, kind=INTERNAL):
    """The local root of a trace; the tracer sets what a remote parent passes on (parent
    id, baggage, tracestate, an unset random-trace-id flag). Tracer.start_active_span
    writes this out: keep the two alike (tests/test_written_out_copies.py fails when they
    are not)."""
    span = RootSpan()
    span._tracer = tracer
    span.trace_id = trace_id
    span.sampled = sampled
    span.span_id = span_id
    span.name = name
    span.start_ns = start_ns
    span.kind = kind
    span.attributes = {}
    span.parent_id = span.baggage = span._context = span.events = None
    span.summary = span.links = None
    span.tracestate = span.spans = ()  # spans: a list from the first child on, None once closed
    span.end_ns = 0
    span.status = STATUS_UNSET
    span.status_message = ""
    span.keep = False
    return span


class TraceSummary:
    """What a local root adds to its own span at export, beyond its children, and the
    bookkeeping behind it: the calls made in the trace by category (``spyglass.agg.*``),
    the spans dropped over max_spans_per_trace; the last fast call and its key, to fold an
    N+1 run of identical calls into one span; the fast calls span_min_duration may leave
    out. Made at the trace's first call (or dropped span): a trace with none has none."""

    __slots__ = ("aggregates", "dropped", "last_call", "last_call_key", "short_calls")

    def __init__(self):
        self.aggregates = {}  # category -> [count, total ns]
        self.dropped = 0
        self.last_call = self.last_call_key = None
        self.short_calls = None  # [(span, min duration ns)]


def _without_short_calls(spans, short_calls):
    short = {id(span) for span, min_ns in short_calls
             if span.end_ns - span.start_ns < min_ns and not span.keep}
    return [span for span in spans if id(span) not in short] if short else spans


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "<unprintable>"


def _set_kind(span, value):
    span.kind = KIND_BY_TAG.get(str(value).lower(), INTERNAL)


def _set_error(span, value):
    if value:
        span.mark_error(span.status_message)
    span.attributes["error"] = value


def _set_sampling_priority(span, value):
    # OpenTracing's way to force (priority > 0) keeping a trace.
    try:
        keep = float(value) > 0
    except (TypeError, ValueError):
        keep = False
    if keep:
        span.keep = True
        span.local.keep = True  # the root: the whole trace is kept
    span.attributes["sampling.priority"] = value


_SPECIAL_TAGS = {
    "span.kind": _set_kind,
    "error": _set_error,
    "sampling.priority": _set_sampling_priority,
}
