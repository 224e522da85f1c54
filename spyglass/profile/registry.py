"""What the app's threads tell the sampler: a dict store per trace, nothing per span.

The sampler cannot ask which span is active in a thread it samples: another thread's
contextvars cannot be read from Python. So each thread records here the local root it
opened last (``roots``: thread id -> RootSpan) as its trace begins, and a trace that is
exported while the sampler holds samples of it (``buffers``) is queued for it
(``exported``). Which span of the trace a sample belongs to is decided at export, by time:
the innermost exported span open when the sample was taken.

A thread that opens a second local root inside the first (a trace nested in a request)
is attributed to the inner one until it finishes, then to none until the outer one ends.
Threads only: an asyncio loop's thread runs many requests' tasks by turns, and its samples
go to the trace begun last on it; so do a gevent-patched app's, its greenlets taking turns on
one OS thread (see Configuration.md, ``profiling``). Which task or greenlet a thread runs
at a given moment cannot be read from another thread without reading its frames' locals.
"""
import collections
import os
import threading

from .. import process
from ..trace.span import RootSpan
from ..trace.tracer import Tracer

# Thread id -> the local root that thread opened last (finished or not). Written by each
# thread for itself; ids of threads gone are pruned by the sampler.
roots = {}
# RootSpan -> its samples so far; written by the sampler thread only.
buffers = {}
# (root, its spans or None for a lone root), exported with samples held: the sampler
# takes them within a tick. Bounded for a process where no sampler runs.
exported = collections.deque(maxlen=1024)
# The lock the sampler waits on while it dozes (no thread in a trace, no stack changed: it
# wakes less often), else None: a trace that begins releases it, for its first samples.
alarm = None


def wake_sampler():
    """End the sampler's doze now (a trace begins)."""
    global alarm
    lock, alarm = alarm, None
    if lock is not None:
        try:
            lock.release()
        except RuntimeError:  # another thread's trace woke it first
            pass



def _os_thread_ident():
    """``threading.get_ident`` as the interpreter has it: where gevent patched it, it names
    the greenlet, which ``sys._current_frames()`` (the sampler's view) never does."""
    from ..report.threads import gevent_patched

    monkey = gevent_patched()
    return threading.get_ident if monkey is None else monkey.get_original("_thread", "get_ident")


_get_ident = _os_thread_ident()


class ProfilingTracer(Tracer):
    """The tracer, telling ``roots`` of each local root it opens (what the tracer does
    is unchanged: this class is used only when ``profiling`` is on)."""

    def start_active_span(self, operation_name, child_of=None, references=None, tags=None,
                          start_time=None, ignore_active_span=False, finish_on_close=True):
        scope = Tracer.start_active_span(self, operation_name, child_of, references, tags,
                                         start_time, ignore_active_span, finish_on_close)
        span = scope.span
        if span.__class__ is RootSpan:
            roots[_get_ident()] = span
            if alarm is not None:
                wake_sampler()
        return scope

    def _new_local_root(self, name, parent, start_ns, kind):
        span = Tracer._new_local_root(self, name, parent, start_ns, kind)
        roots[_get_ident()] = span
        if alarm is not None:
            wake_sampler()
        return span


def exporters(submit_trace, submit_root):
    """The tracer's ``export`` and ``export_lone_root``: the reporter's, then a note for
    the sampler when it holds samples of the trace."""

    def export(spans):
        submit_trace(spans)
        root = spans[-1]  # a finished trace's root comes last (a late child alone is no root)
        if root in buffers:
            exported.append((root, spans))

    def export_lone_root(root):
        submit_root(root)
        if root in buffers:
            exported.append((root, None))

    return export, export_lone_root


# The process generation (process.generation) the entries above belong to.
generation = process.generation


def forget_all():
    """In a forked child: the parent's threads and traces are not ours (a thread of the
    parent's that was inside a request has the child's main thread's id)."""
    global generation, alarm
    roots.clear()
    buffers.clear()
    exported.clear()
    alarm = None
    generation = process.generation


def forget_if_forked():
    """``forget_all`` in a process forked in C (uWSGI) since the entries were written."""
    process.check_fork()
    if generation != process.generation:
        forget_all()


os.register_at_fork(after_in_child=forget_all)
