"""What the task-queue instrumentations share (Celery, RQ).

Publishing a task is a PRODUCER span, ``send <task>``: a child of the active span, or a
trace of its own where there is none (a script, ``celery beat``). It is timed as a call
(``timing.<library>``: a slow or failed publish is kept with its stack) and its W3C
context (``traceparent``, ``tracestate``, ``baggage``) travels in the message.

Running a task is a CONSUMER span named by the task, continuing the context found in the
message; without one, a child of the active span (a task run in-process: Celery's eager
mode, RQ's synchronous queues), else a trace of its own. While it runs, the task has its
own scope layer and active span, as a request has (``TaskRun`` is a ``RequestTrace``): its
calls are its children, its log records and errors carry its ids, ``set_user``,
``set_request_options`` and ``logging_on_error`` apply to it. A task that fails is an
error event (once, whoever reports it first) and the span's status is ERROR.

A later attempt of a task (a retry) carries, next to the trace context, the context of the
attempt before it (``spyglass-retry-of``, a ``traceparent``); its span links to that one.

Attributes (OpenTelemetry's messaging conventions): ``messaging.system`` (``celery``,
``rq``), ``messaging.operation.type`` (``send``, ``process``), ``messaging.operation.name``,
``messaging.destination.name`` (the queue or routing key), ``messaging.message.id`` (the
task's or job's id); the library's own under ``messaging.<system>.*``.
"""
import logging

from . import _calls
from ..config import truthy
from ..errors import capture, scope as scopes
from ..trace import propagation
from ..trace.context import activate, get_active_scope, suppressed
from ..trace.span import CONSUMER, PRODUCER
from ..web import RequestTrace

log = logging.getLogger("spyglass")

RETRY_OF = "spyglass-retry-of"
CONTEXT_KEYS = (propagation.TRACEPARENT, propagation.TRACESTATE, propagation.BAGGAGE, RETRY_OF)


class Publishing:
    """The PRODUCER spans of one library."""

    def __init__(self, agent, timing_key, system):
        self.agent = agent
        self.system = system
        self.calls = _calls.CallRecorder(agent, timing_key, _calls.REMOTE, PRODUCER)

    def start(self, task_name, message_id=None, destination=None):
        """The active scope of the PRODUCER span of a message about to be published, or
        None on spyglass's own threads (or if it fails: then the app's call goes on)."""
        if suppressed.get():
            return None
        try:
            tracer = self.agent.tracer
            span = tracer.start_child(f"send {task_name}", PRODUCER)
            attributes = span.attributes
            attributes["messaging.system"] = self.system
            attributes["messaging.operation.type"] = "send"
            attributes["messaging.operation.name"] = "send"
            attributes[f"messaging.{self.system}.task.name"] = str(task_name)
            if message_id:
                attributes["messaging.message.id"] = str(message_id)
            if destination:
                attributes["messaging.destination.name"] = str(destination)
            return activate(tracer.scope_manager, span, False)
        except Exception:
            self.calls.failed()
            return None

    def around(self, scope, call, *args, **kwargs):
        """``call(*args, **kwargs)`` (the library's publish) inside the producer span of
        ``scope`` (None: untraced), which ends with it."""
        if scope is None:
            return call(*args, **kwargs)
        try:
            result = call(*args, **kwargs)
        except BaseException as error:
            self.finish(scope, error if isinstance(error, Exception) else None)
            raise
        self.finish(scope)
        return result

    def finish(self, scope, error=None):
        if scope is None:
            return
        try:
            scope.close()
            self.calls.finish(scope.span, error)
        except Exception:
            self.calls.failed()


def context_of(span, previous_attempt=None):
    """The trace context ``span`` passes on, as a message carries it: the W3C headers, and
    ``spyglass-retry-of`` naming ``previous_attempt`` (a span) when there is one."""
    context = span.context
    carrier = {}
    propagation.inject(carrier, context.trace_id, context.span_id, context.sampled,
                       context.tracestate, context.baggage)
    if previous_attempt is not None:
        carrier[RETRY_OF] = traceparent_of(previous_attempt)
    return carrier


def traceparent_of(span):
    """``span``'s id as a ``traceparent`` (for ``spyglass-retry-of``)."""
    return propagation.format_traceparent(span.local.trace_id, span.span_id, span.local.sampled)


class TaskRun(RequestTrace):
    """One run of a task: its CONSUMER span, and while it runs (``with run:``, or its
    ``__enter__`` and ``__exit__`` called by a library's signals), its scope layer (the
    current "request", for errors, logs and options) and its span active. An exception
    out of the ``with`` is reported (``fail``); ``finish()`` ends the span."""

    message_id = None
    _parent_scope = None

    def __init__(self, agent, span, task_name, message_id):
        RequestTrace.__init__(self, agent, agent.tracer, span, None)
        self.route = task_name
        self.message_id = message_id

    def fail(self, exc, expected=False):
        """The task raised ``exc``: an error event, and status ERROR. ``expected`` (an
        exception the task declares it may raise): recorded on the span only."""
        if expected:
            if not self.errored:
                self.span.record_exception(exc, scrubber=capture.scrubber_for(self.agent),
                                           error=False)
            return
        capture.capture_unhandled(exc, self)
        outer = self._parent_scope.request if self._parent_scope is not None else None
        if outer is not None and isinstance(exc, Exception):
            outer.captured_exception(exc)  # run in-process: it may go on to raise there

    def finish(self):
        if self.finished:
            return
        self.finished = True
        span = self.span
        try:
            options = self.current_options()
            if options.get("view_name"):
                span.name = str(options["view_name"])
            if truthy(options.get("force_send")):
                span.keep = True
            if self.held_logs:
                if self.errored or truthy(options.get("force_logs")):
                    for record in self.held_logs:
                        self.agent.reporter.submit_log(record)
                self.held_logs = None
        except Exception:
            log.exception("spyglass: error while finishing a task's span")
        try:
            span.finish()
        except Exception:
            log.exception("spyglass: error while exporting a task's span")

    def describe(self, scrubber):
        return {"task": self.route_name(), "id": self.message_id}


def start_run(agent, system, task_name, carrier, message_id=None, destination=None):
    """A ``TaskRun`` for a task about to run, its span started (not yet entered):
    continuing the trace context in ``carrier`` (a mapping, may be None)."""
    tracer = agent.tracer
    name = str(task_name)
    found = propagation.extract(carrier) if carrier else None
    active = get_active_scope()
    if found is None and active is not None:
        span = tracer.start_child(name, CONSUMER, active.span)
    else:
        span = tracer.start_server_span(name, carrier if found is not None else None, CONSUMER)
    attributes = span.attributes
    attributes["messaging.system"] = system
    attributes["messaging.operation.type"] = "process"
    attributes["messaging.operation.name"] = "process"
    attributes[f"messaging.{system}.task.name"] = name
    if message_id:
        attributes["messaging.message.id"] = str(message_id)
    if destination:
        attributes["messaging.destination.name"] = str(destination)
    previous = _get(carrier, RETRY_OF) if carrier else None
    if previous and span.local_root:
        parsed = propagation.parse_traceparent(previous)
        if parsed is not None:
            span.add_link(parsed.trace_id, parsed.span_id)
    return TaskRun(agent, span, name, message_id)


def current_run():
    """The ``TaskRun`` of the task running here, or None."""
    request = scopes.current_request()
    return request if isinstance(request, TaskRun) else None


def _get(carrier, key):
    try:
        value = carrier.get(key)
    except Exception:
        return None
    return value if isinstance(value, str) else None

