"""RQ: a PRODUCER span per job enqueued, a CONSUMER span per job run (see _tasks).

=======================================  ==================================================
patched                                   why
=======================================  ==================================================
``rq.queue.Queue.enqueue_job``            the PRODUCER span, ``send <function>``
                                          (``enqueue``, ``enqueue_call``), the trace context
                                          into ``job.meta["spyglass"]``
``rq.queue.Queue.schedule_job``           the same for ``enqueue_at`` / ``enqueue_in``
``rq.job.Job.perform``                    the CONSUMER span, named by the job's function,
                                          around the function's run (in the work horse, a
                                          ``SimpleWorker``, or a synchronous queue's
                                          ``enqueue``); a failure is an error event, and
                                          the job's next attempt links to this one
``rq.worker.BaseWorker.perform_job``      a work horse drains what it traced before RQ ends
                                          it with ``os._exit``
=======================================  ==================================================

``Queue.enqueue_many`` (jobs prepared with ``Queue.prepare_data``) is not traced: its jobs
run as traces of their own.

A job enqueued again by the worker itself (a retry, scheduled or not) keeps the context it
carries: its next attempt continues the same trace, linked to the attempt before it.
``job.meta`` is replaced by a copy with the ``spyglass`` key, never changed in place: a
dict the app passed as ``meta`` stays as it was.
"""
import functools
import logging

from . import _tasks
from ..trace.context import get_active_scope

log = logging.getLogger("spyglass")

SYSTEM = "rq"
META_KEY = "spyglass"
_ORIGINAL = "__spyglass_original__"
_logged = set()


def install(agent, module):
    import rq.job
    import rq.queue
    import rq.worker

    queue_class = rq.queue.Queue
    if getattr(queue_class.enqueue_job, _ORIGINAL, None) is not None:
        return  # patched already (a second start of the sensor)
    publishing = _tasks.Publishing(agent, "rq", SYSTEM)
    _patch(queue_class, "enqueue_job", _enqueuing(publishing))
    _patch(queue_class, "schedule_job", _enqueuing(publishing))
    _patch(rq.job.Job, "perform", _performing(agent))
    worker_class = getattr(rq.worker, "BaseWorker", rq.worker.Worker)
    _patch(worker_class, "perform_job", _draining_horse(agent))


def _patch(cls, name, make):
    original = cls.__dict__[name]
    replacement = functools.wraps(original)(make(original))
    setattr(replacement, _ORIGINAL, original)
    setattr(cls, name, replacement)


def _enqueuing(publishing):
    def make(original):
        def enqueue(self, job, *args, **kwargs):
            carried = _carried(job)
            if carried and get_active_scope() is None:
                return original(self, job, *args, **kwargs)  # the worker's retry: as it came
            scope = publishing.start(_job_name(job), getattr(job, "id", None),
                                     getattr(self, "name", None))
            if scope is not None:
                try:
                    _set_context(job, _tasks.context_of(scope.span))
                except Exception:
                    _failed("writing a job's trace context")
            return publishing.around(scope, original, self, job, *args, **kwargs)

        return enqueue

    return make


def _performing(agent):
    def make(original):
        def perform(self):
            run = None
            try:
                run = _tasks.start_run(agent, SYSTEM, _job_name(self), _carried(self),
                                       self.id, getattr(self, "origin", None))
                run.enter()
            except Exception:
                _failed("starting a job's span")
            if run is None:
                return original(self)
            try:
                result = original(self)
            except BaseException as exc:
                _failed_attempt(self, run, exc)
                raise
            finally:
                try:
                    run.leave()
                except Exception:
                    _failed("ending a job's span")
                run.finish()  # guarded inside
            return result

        return perform

    return make


def _failed_attempt(job, run, exc):
    """Report the failure, and leave the next attempt (if RQ retries) a link to this one."""
    try:
        if isinstance(exc, Exception):
            run.fail(exc)
        carried = _carried(job)
        if carried:
            _set_context(job, dict(carried, **{_tasks.RETRY_OF: _tasks.traceparent_of(run.span)}))
    except Exception:
        _failed("reporting a job's failure")


def _draining_horse(agent):
    def make(original):
        def perform_job(self, *args, **kwargs):
            try:
                return original(self, *args, **kwargs)
            finally:
                if getattr(self, "_is_horse", False):  # RQ ends it with os._exit next
                    try:
                        agent.reporter.at_exit()
                    except Exception:
                        _failed("draining a work horse")

        return perform_job

    return make


def _carried(job):
    meta = getattr(job, "meta", None)
    context = meta.get(META_KEY) if isinstance(meta, dict) else None
    return context if isinstance(context, dict) else None


def _set_context(job, context):
    meta = job.meta
    if not isinstance(meta, dict) or "unserialized" in meta:  # RQ's placeholder: left alone
        return
    job.meta = dict(meta, **{META_KEY: context})


def _job_name(job):
    try:
        return job.func_name or "job"
    except Exception:  # a job whose function cannot be loaded
        return "job"


def _failed(what):
    if what not in _logged:
        _logged.add(what)
        log.exception("spyglass: error while %s (logged once; RQ is unaffected)", what)
