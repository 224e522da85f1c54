"""Timing and recording of the calls an app makes: databases, Solr, Redis, templates and
outbound HTTP. Every instrumentation of such a library holds one ``CallRecorder``.

What happens to a finished call (``CallRecorder.record``, for leaf calls that propagate
nothing):

1. It is added to the request's aggregates by category (``spyglass.agg.<category>.*`` on the
   local root), always, whether or not a span is exported.
2. At or over the library's ``timing.<library>`` threshold it is slow: ``spyglass.slow`` and
   the app's own part of the stack (``spyglass.stack``, innermost last) are set, and the span
   is kept even when the trace is unsampled. A failed call is kept too.
3. A fast call in a sampled trace that repeats the previous call under the same parent (an
   N+1 loop) is folded into that span as ``spyglass.count``; a fast call under
   ``span_min_duration`` is dropped at export (see ``RootSpan``).

Calls whose span must exist before they run (outbound HTTP injects its id) use
``CallRecorder.finish`` on a span started with the tracer instead.

Outside any trace (a script, a worker's loop) a call's parent is ``OUTSIDE``: the
instrumentations time the call as in a trace (and feed the same metrics); a fast one ends
there, at the cost of the timing; a slow or failed one becomes a trace of its own, a root
span of the call's kind with its stack (``Outside.add``). A blocking wait the app asked
for (Redis' BLPOP in a worker's loop) is never slow, and outside a trace never a trace even
when it fails (a worker told to stop raises in it): its library names it in ``waits``.

Errors here are the sensor's: ``CallRecorder.failed`` logs the first one per library and
the app's call goes on untouched.
"""
import linecache
import logging
import os
import sys
import time

from .. import process
from ..process import _getrandbits
from ..trace.span import CLIENT, RootSpan, new_root_span, new_span

log = logging.getLogger("spyglass")

SQL, NOSQL, REMOTE, TEMPLATE = "sql", "nosql", "remote", "template"
MAX_STACK_FRAMES = 30

time_ns = time.time_ns


class Outside:
    """The parent of the calls made outside any trace, and the local trace of their spans
    (``local`` is itself, as a RootSpan's): unsampled, counting nothing, so that a fast call
    costs its timing and no more; a call kept (slow or failed) is exported alone."""

    __slots__ = ()
    sampled = False
    span_id = 0
    baggage = None
    spans = None

    @property
    def local(self):
        return self

    def count_call(self, category, duration_ns):
        pass

    def add(self, span):
        """A finished call span under ``OUTSIDE`` that must be seen (``keep``): exported
        as a trace of its own, its root (made on the slow or failed path only)."""
        tracer = span._tracer
        process.check_fork()
        root = new_root_span(tracer, _getrandbits(128) or 1, True, span.span_id, span.name,
                             span.start_ns, span.kind)
        root.attributes = span.attributes
        root.events = span.events
        root.status, root.status_message = span.status, span.status_message
        root.end_ns = span.end_ns
        root.keep = True
        root.spans = None  # closed
        tracer.export_lone_root(root)


OUTSIDE = Outside()


class OutsideScope:
    """What the instrumentations take for the active scope when there is none."""

    __slots__ = ()
    span = OUTSIDE


OUTSIDE_SCOPE = OutsideScope()


class CallRecorder:
    """The calls of one instrumented library: its threshold, category and span kind;
    ``waits``, the names of its calls that block as long as the app asked (never slow)."""

    def __init__(self, agent, timing_key, category, kind=CLIENT, quoted_errors=True,
                 waits=frozenset()):
        config = agent.config
        threshold = config.threshold(timing_key)
        self.agent = agent
        self.library = timing_key
        self.category = category
        self.kind = kind
        # A library switched off is never installed; the guard is for direct use.
        self.slow_ns = int(threshold * 1e9) if threshold is not False else 1 << 62
        self.min_ns = int(config.span_min_duration * 1e9)
        self.compress = bool(config.compress_repeated_calls)
        self.in_app_include = tuple(config.in_app_include)
        self.in_app_exclude = tuple(config.in_app_exclude)
        # False: the library's errors quote the app's data (memcached clients' name the key):
        # only their type and frames leave.
        self.quoted_errors = quoted_errors
        self.waits = waits
        self._logged = False

    def record(self, parent, name, start_ns, end_ns, attributes, error=None, repeat_key=None):
        """A finished leaf call under ``parent`` (a Span); returns its span, if one was made.

        ``repeat_key`` (say, the statement's hash; it must tell calls of different names
        apart too) makes the call foldable into an identical previous one under the same
        parent; ``None`` never folds.
        """
        duration = end_ns - start_ns
        local = parent if parent.__class__ is RootSpan else parent.local  # its property, skipped
        attributes["spyglass.category"] = self.category
        # The common case in one step (a blocking wait is tested for only when it is long).
        if error is None and (duration < self.slow_ns or name in self.waits):
            if not local.sampled:
                local.count_call(self.category, duration)
                return None
            if not self.compress:
                repeat_key = None
            elif repeat_key is not None and local.fold_fast_call(
                    parent.span_id, self.category, duration, end_ns, repeat_key):
                return None
            return local.add_fast_call(parent, name, self.kind, start_ns, end_ns, attributes,
                                       self.category, repeat_key, self.min_ns)
        local.count_call(self.category, duration)
        if duration >= self.slow_ns and name not in self.waits:
            self.mark_slow(attributes)
        if local is OUTSIDE:
            if name in self.waits:  # a worker's wait, ended by its stop as often as not
                return None
            span = self.start_outside(name, start_ns, attributes)
            span.end_ns = end_ns
        else:
            span = parent._tracer.record_call(parent, name, self.kind, start_ns, end_ns,
                                              attributes, keep=True)
        if error is not None:
            span.record_exception(error, quoted=self.quoted_errors)
        if local is OUTSIDE:
            OUTSIDE.add(span)
        return span

    def start_outside(self, name, start_ns=None, attributes=None):
        """The span of a call about to run outside any trace, for ``finish`` (its library
        propagates nothing from it: it becomes a trace only if it is kept)."""
        process.check_fork()  # a fork that skipped the at-fork hooks (uWSGI): new ids
        return new_span(self.agent.tracer, OUTSIDE, _getrandbits(64) or 1, None, name,
                        time_ns() if start_ns is None else start_ns, self.kind, None,
                        attributes)

    def finish(self, span, error=None):
        """Finish a call's span that was started beforehand (and whose id may have been
        propagated, so it is never folded or dropped)."""
        end_ns = time_ns()
        duration = end_ns - span.start_ns
        span.local.count_call(self.category, duration)
        attributes = span.attributes
        attributes["spyglass.category"] = self.category
        if duration >= self.slow_ns and span.name not in self.waits:
            self.mark_slow(attributes)
            span.keep = True
        if error is not None:
            span.record_exception(error, quoted=self.quoted_errors)
        span.finish()

    def mark_slow(self, attributes):
        attributes["spyglass.slow"] = True
        stack = in_app_stack(self.in_app_include, self.in_app_exclude)
        if stack:
            # Its source lines are the app's code: their literals (a value, a statement: the
            # app's data) are masked by in_app_stack, and what else looks secret redacted.
            attributes["spyglass.stack"] = self.agent.scrubber.text(stack)

    def failed(self):
        """Call from an ``except`` block inside spyglass: log the first error per library."""
        if not self._logged:
            self._logged = True
            log.exception("spyglass: error while recording a %s call (logged once; the "
                          "app's call is unaffected)", self.library)
        else:
            log.debug("spyglass: error while recording a %s call", self.library, exc_info=True)


def in_app_stack(include=(), exclude=(), limit=MAX_STACK_FRAMES):
    """The app's own frames of the current stack, formatted as a traceback, innermost last.

    Only called for slow calls: walking the stack costs a few microseconds. The string
    literals of its source lines are masked (``redact.scrub.mask_string_literals``).
    """
    # Imported here, at the first slow call: errors and redact cost a library's
    # instrumentation 2 ms at the app's import of it, for what most calls never need.
    from ..errors.event import in_app
    from ..redact.scrub import mask_string_literals

    frame = sys._getframe(1)
    lines = []
    while frame is not None and len(lines) < limit:
        code = frame.f_code
        filename = code.co_filename
        module = frame.f_globals.get("__name__")
        if in_app(module, _absolute(filename), include, exclude):
            entry = f'  File "{filename}", line {frame.f_lineno}, in {code.co_name}\n'
            source = mask_string_literals(
                linecache.getline(filename, frame.f_lineno, frame.f_globals).strip())
            lines.append(entry + f"    {source}\n" if source else entry)
        frame = frame.f_back
    lines.reverse()
    return "".join(lines)


def _absolute(path):
    if not path or path.startswith("<") or os.path.isabs(path):
        return path
    return os.path.abspath(path)


# -- db.client.operation.duration, owned by spyglass.metrics (lazily, if it exists) ----------

def db_call_metric():
    """spyglass.metrics' ``record_db_call(system, operation, duration_s)``, or None when this
    build has none. Called on the hot path of every query, so it is not wrapped: call it
    inside the ``try`` that guards the recording of the call."""
    try:
        from ..metrics import record_db_call
    except Exception:
        return None
    return record_db_call


def metric_recorder(name):
    """spyglass.metrics' function ``name`` (``record_http_client``, ``record_template``,
    ``record_db_call``), or None when this build has none; as ``db_call_metric``, call it
    inside the ``try`` that guards the recording of the call."""
    try:
        from .. import metrics
    except Exception:
        return None
    return getattr(metrics, name, None)
