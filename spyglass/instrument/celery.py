"""Celery: a PRODUCER span per task published, a CONSUMER span per task run (see _tasks).

====================================  =====================================================
patched / connected                    why
====================================  =====================================================
``celery.app.base.Celery.send_task``   the PRODUCER span, ``publish <task>``: every publish
                                       goes through it (``apply_async``, ``delay``,
                                       ``send_task``, canvas, retries, ``celery beat``),
                                       timed, ended also when the broker refuses
``before_task_publish``                the trace context into the message's headers
                                       (``traceparent``, ``tracestate``, ``baggage``, and
                                       ``spyglass-retry-of`` for a retry), the queue, the
                                       task id
``task_prerun`` / ``task_postrun``     the CONSUMER span, named by the task, around the run,
                                       in the pool's process or thread (prefork, threads,
                                       solo, eager); its state (``SUCCESS``, ``FAILURE``,
                                       ``RETRY``, ``REJECTED``, ``IGNORED``) when it ends
``task_failure``                       the error event (an exception in ``Task.throws`` is
                                       only recorded on the span, as Celery only logs it)
``task_retry``                         the reason, on the attempt's span
``worker_process_shutdown``            a prefork child drains what it traced before it
                                       ends (billiard ends it with ``os._exit``: on
                                       ``--max-tasks-per-child`` recycling, at shutdown,
                                       and on a SIGTERM of its own, which billiard turns
                                       into an exit through the same path)
====================================  =====================================================

``send_task`` is declared below (``PATCHES``); the signals' handlers are connected by
``setup``, strongly (``weak=False``) and with a ``dispatch_uid``: once, whatever starts the
sensor twice; ``teardown`` disconnects them. Each catches its own errors: Celery would log
them on the app's logger.
"""
import logging

from . import _tasks
from ._patch import Patch, Supports
from ..trace.context import current_span
from ..trace.span import PRODUCER

SUPPORTS = Supports("celery", "5.0")
TIMING = "celery"
PATCHES = (
    Patch("celery.app.base", "Celery", send_task="traced_send_task"),
)

log = logging.getLogger("spyglass")

SYSTEM = "celery"
UID = "spyglass"

# id(task.request) -> TaskRun, from task_prerun to task_postrun. The request (Celery's
# Context of this run) is the one object every signal of a run reaches; task ids repeat
# (a message delivered twice, run by two threads).
_runs = {}
_logged = set()


def setup(agent, module):
    """Connect the signals (once: a ``dispatch_uid``); what the patch shares: the task
    queue's spans."""
    from celery import signals

    tasks = _tasks.TaskQueue(agent, TIMING, SYSTEM)
    for name, handler in _handlers(tasks).items():
        getattr(signals, name).connect(handler, weak=False, dispatch_uid=UID)
    return tasks


def teardown(tasks):
    """Disconnect what ``setup`` connected (``uninstall()``); runs in progress are
    forgotten."""
    from celery import signals

    for name in _handlers(tasks):
        getattr(signals, name).disconnect(dispatch_uid=UID)
    _runs.clear()


def _handlers(tasks):
    """The name in ``celery.signals`` of each signal spyglass handles -> its handler."""
    return {"before_task_publish": _on_before_publish,
            "task_prerun": _prerun(tasks),
            "task_postrun": _on_postrun,
            "task_failure": _on_failure,
            "task_retry": _on_retry,
            "worker_process_shutdown": _drain(tasks.agent)}


def traced_send_task(original, tasks):
    def send_task(self, name, *args, **kwargs):
        return tasks.sent(tasks.sending(name), original, self, name, *args, **kwargs)

    return send_task


# -- the publisher's side ---------------------------------------------------------------------

def _on_before_publish(sender=None, body=None, exchange=None, routing_key=None, headers=None,
                       **_):
    """Inside ``send_task``: the producer span is active; write its context into the
    message's own headers (protocol 2; protocol 1 hands them to the task as
    ``request.headers``)."""
    try:
        span = current_span()
        if span is None or not isinstance(headers, dict):
            return
        # Protocol 2 keeps the task's fields in the headers, protocol 1 in the body.
        fields = body if isinstance(body, dict) else headers
        task_id = fields.get("id")
        run = _tasks.current_run()
        previous = run.span if run is not None and run.message_id == task_id else None
        if span.kind == PRODUCER and span.attributes.get("messaging.system") == SYSTEM:
            attributes = span.attributes
            if task_id:
                attributes["messaging.message.id"] = str(task_id)
            destination = routing_key or (exchange if isinstance(exchange, str) else
                                          getattr(exchange, "name", None))
            if destination:
                attributes["messaging.destination.name"] = str(destination)
            retries = fields.get("retries")
            if retries:
                attributes["messaging.celery.retries"] = retries
        headers.pop(_tasks.RETRY_OF, None)  # Celery copies a retried task's own headers
        headers.update(_tasks.context_of(span, previous))
    except Exception:
        _failed("publishing a task")


# -- the worker's side ------------------------------------------------------------------------

def _prerun(tasks):
    def on_prerun(sender=None, task_id=None, task=None, **_):
        try:
            if task is None or task_id is None:
                return
            request = task.request
            delivery = request.get("delivery_info") or {}
            run = tasks.run(task.name, _carrier(request), task_id,
                            delivery.get("routing_key") or delivery.get("exchange"))
            if run is None:
                return
            attributes = run.span.attributes
            retries = request.get("retries")
            if retries:
                attributes["messaging.celery.retries"] = retries
            hostname = request.get("hostname")
            if hostname:
                attributes["messaging.client.id"] = str(hostname)
            run.__enter__()
            _runs[id(request)] = run
        except Exception:
            _failed("starting a task's span")

    return on_prerun


def _on_postrun(sender=None, task_id=None, task=None, state=None, **_):
    run = _runs.pop(id(task.request), None) if task is not None else None
    if run is None:
        return
    try:
        run.__exit__(None, None, None)
        if state:
            run.span.attributes["messaging.celery.state"] = str(state)
    except Exception:
        _failed("ending a task's span")
    run.finish()  # guarded inside


def _on_failure(sender=None, task_id=None, exception=None, **_):
    run = _runs.get(id(sender.request)) if sender is not None else None
    if run is None or not isinstance(exception, BaseException):
        return
    try:
        throws = getattr(sender, "throws", ()) or ()
        run.fail(exception, expected=isinstance(exception, tuple(throws)))
    except Exception:
        _failed("reporting a task's failure")


def _on_retry(sender=None, request=None, reason=None, **_):
    run = _runs.get(id(request)) if request is not None else None
    if run is None or reason is None:
        return
    try:
        scrubber = run.agent.scrubber
        run.span.attributes["messaging.celery.retry.reason"] = scrubber.text(str(reason))
        cause = getattr(reason, "exc", None)
        if isinstance(cause, BaseException):
            run.span.record_exception(cause, scrubber=scrubber, error=False)
    except Exception:
        _failed("recording a task's retry")


def _drain(agent):
    def on_process_shutdown(**_):
        try:
            agent.reporter.at_exit()
        except Exception:
            _failed("draining a pool process")

    return on_process_shutdown


def _carrier(request):
    """The trace context a task's message brought: its own headers are attributes of the
    request (protocol 2), or in ``request.headers`` (protocol 1, or nested there by
    another tracer)."""
    carrier = {}
    nested = request.get("headers")
    for key in _tasks.CONTEXT_KEYS:
        value = request.get(key)
        if value is None and isinstance(nested, dict):
            value = nested.get(key)
        if isinstance(value, str):
            carrier[key] = value
    return carrier


def _failed(what):
    if what not in _logged:
        _logged.add(what)
        log.exception("spyglass: error while %s (logged once; Celery is unaffected)", what)
