"""RQ: a PRODUCER span per job enqueued, a CONSUMER span per job run (see _tasks).

=======================================  ==================================================
patched                                   why
=======================================  ==================================================
``rq.queue.Queue.enqueue_job``            the PRODUCER span, ``publish <function>``
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
import logging

from . import _tasks
from ._patch import Patch, Supports
from ..trace.context import get_active_scope

SUPPORTS = Supports("rq", "2.0")
TIMING = "rq"
PATCHES = (
    Patch("rq.queue", "Queue", enqueue_job="traced_enqueue", schedule_job="traced_enqueue"),
    Patch("rq.job", "Job", perform="traced_perform"),
    Patch("rq.worker.base", "BaseWorker", perform_job="draining_horse"),
)

log = logging.getLogger("spyglass")

SYSTEM = "rq"
META_KEY = "spyglass"
_logged = set()


def setup(agent, module):
    """What the patches share: the task queue's spans (and through them, the agent)."""
    return _tasks.TaskQueue(agent, TIMING, SYSTEM)


def traced_enqueue(original, tasks):
    def enqueue(self, job, *args, **kwargs):
        carried = _carried(job)
        if carried and get_active_scope() is None:
            return original(self, job, *args, **kwargs)  # the worker's retry: as it came
        scope = tasks.sending(_job_name(job), getattr(job, "id", None),
                              getattr(self, "name", None))
        if scope is not None:
            try:
                _set_context(job, _tasks.context_of(scope.span))
            except Exception:
                _failed("writing a job's trace context")
        return tasks.sent(scope, original, self, job, *args, **kwargs)

    return enqueue


def traced_perform(original, tasks):
    def perform(self):
        run = None
        try:
            run = tasks.run(_job_name(self), _carried(self), self.id, getattr(self, "origin", None))
            if run is not None:
                run.__enter__()
        except Exception:
            _failed("starting a job's span")
            run = None
        if run is None:
            return original(self)
        try:
            result = original(self)
        except BaseException as exc:
            run.__exit__(type(exc), exc, exc.__traceback__)  # reported: an error event
            _link_next_attempt(self, run)
            raise
        else:
            run.__exit__(None, None, None)
        finally:
            run.finish()  # guarded inside
        return result

    return perform


def _link_next_attempt(job, run):
    """The job failed: if RQ runs it again, its next attempt links to this one."""
    try:
        carried = _carried(job)
        if carried:
            _set_context(job, dict(carried, **{_tasks.RETRY_OF: _tasks.traceparent_of(run.span)}))
    except Exception:
        _failed("linking a job's next attempt")


def draining_horse(original, tasks):
    reporter = tasks.agent.reporter

    def perform_job(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            if getattr(self, "_is_horse", False):  # RQ ends it with os._exit next
                try:
                    reporter.at_exit()
                except Exception:
                    _failed("draining a work horse")

    return perform_job


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
