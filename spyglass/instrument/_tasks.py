"""What the task-queue instrumentations share (Celery, RQ), on what the message buses'
share (``_messaging``): a task is a message whose spans are named by the task.

Publishing a task is a PRODUCER span, ``publish <task>``: a child of the active span, or a
trace of its own where there is none (a script, ``celery beat``), active while the library
publishes (the broker's calls are its children). It is timed as a call
(``timing.<library>``: a slow or failed publish is kept with its stack) and its W3C context
(``traceparent``, ``tracestate``, ``baggage``) travels in the message.

Running a task is a CONSUMER span named by the task, continuing the context found in the
message; without one, a child of the active span (a task run in-process: Celery's eager
mode, RQ's synchronous queues), else a trace of its own. ``TaskRun`` is a message bus's
``Delivery``: while the task runs, its scope layer and active span (its calls are its
children, its log records and errors carry its ids, ``set_user``, ``set_request_options``
and ``logging_on_error`` apply to it; slow by ``slow_request_time``). A task that fails is
an error event (once, whoever reports it first) and the span's status is ERROR.

A later attempt of a task (a retry) carries, next to the trace context, the context of the
attempt before it (``spyglass-retry-of``, a ``traceparent``); its span links to that one.

Attributes: the message buses' (``messaging.system``: ``celery``, ``rq``;
``messaging.operation.type`` and ``.name``, ``messaging.destination.name``: the queue),
``messaging.message.id`` (the task's or job's id), ``messaging.<system>.task.name``.
"""
from ._http import inject
from ._messaging import Delivery, Messaging
from ..errors import capture, scope as scopes
from ..trace import propagation
from ..trace.context import activate

RETRY_OF = "spyglass-retry-of"
CONTEXT_KEYS = (propagation.TRACEPARENT, propagation.TRACESTATE, propagation.BAGGAGE, RETRY_OF)


class TaskQueue(Messaging):
    """The PRODUCER and CONSUMER spans of one task queue library."""

    def sending(self, task_name, message_id=None, destination=None):
        """The active scope of the PRODUCER span of a task about to be published, or None
        (see ``Messaging.publishing``)."""
        attributes = {f"messaging.{self.system}.task.name": str(task_name)}
        if message_id:
            attributes["messaging.message.id"] = str(message_id)
        span = self.publishing(destination, name=f"publish {task_name}", **attributes)
        if span is None:
            return None
        try:
            return activate(self.agent.tracer.scope_manager, span, False)
        except Exception:
            self.calls.failed()
            return None

    def sent(self, scope, call, *args, **kwargs):
        """``call(*args, **kwargs)``, the library's publish, inside the producer span of
        ``scope`` (None: untraced), which ends with it."""
        if scope is None:
            return call(*args, **kwargs)
        try:
            return self.around(scope.span, call, *args, **kwargs)
        finally:
            scope.close()

    def run(self, task_name, carrier, message_id=None, destination=None):
        """A ``TaskRun`` for a task about to run, its span started (not yet entered),
        continuing the trace context in ``carrier`` (a mapping, or None); None on
        spyglass's own threads or on a failure of ours."""
        name = str(task_name)
        attributes = {f"messaging.{self.system}.task.name": name}
        if message_id:
            attributes["messaging.message.id"] = str(message_id)
        run = self.delivery(destination, carrier, name=name, kind=TaskRun, **attributes)
        if run is not None:
            run.task, run.message_id = name, message_id
            previous = _get(carrier, RETRY_OF) if carrier else None
            parsed = propagation.parse_traceparent(previous) if previous else None
            if parsed is not None and run.span.local_root:
                run.span.add_link(parsed.trace_id, parsed.span_id)
        return run


def context_of(span, previous_attempt=None):
    """The trace context ``span`` passes on, as a message carries it: the W3C headers, and
    ``spyglass-retry-of`` naming ``previous_attempt`` (a span) when there is one."""
    carrier = {}
    inject(carrier, span)
    if previous_attempt is not None:
        carrier[RETRY_OF] = traceparent_of(previous_attempt)
    return carrier


def traceparent_of(span):
    """``span``'s id as a ``traceparent`` (for ``spyglass-retry-of``)."""
    return propagation.format_traceparent(span.local.trace_id, span.span_id, span.local.sampled)


class TaskRun(Delivery):
    """One run of a task: a delivery whose failure the library may report before the run
    ends (Celery's ``task_failure`` comes before ``task_postrun``), so that reporting it
    does not end the span: ``finish()`` does."""

    task = message_id = None
    _parent_scope = None  # set as it is entered

    def fail(self, exc, expected=False):
        """The task raised ``exc``: an error event, and status ERROR. ``expected`` (an
        exception the task declares it may raise): recorded on the span only."""
        if expected:
            if not self.errored:
                self.span.record_exception(exc, scrubber=self.agent.scrubber,
                                           error=False)
            return
        if not isinstance(exc, Exception):
            return
        capture.capture_unhandled(exc, self)
        outer = self._parent_scope.request if self._parent_scope is not None else None
        if outer is not None:
            outer.captured_exception(exc)  # run in-process: it may go on to raise there

    def describe(self, scrubber):
        return dict(Delivery.describe(self, scrubber), task=self.task, id=self.message_id)


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
