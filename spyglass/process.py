"""Process-wide state shared by the tracer and the reporter, kept light on purpose (the
reporter imports it at startup; it must not pull in opentracing or the tracer):

- trace and span ids: 128-bit and 64-bit, never zero, unique across forked workers;
- fork detection: ``generation`` changes in a forked child;
- ``suppressed``: true in spyglass's own threads, where instrumentation records nothing.

A forked child inherits the parent's generator state, so two uWSGI workers would hand out
the same ids. ``os.register_at_fork`` covers ``os.fork``; uWSGI forks in C and skips it,
so every new local trace compares the pid (and uWSGI's post-fork hook calls
``check_fork``); a change re-seeds and bumps ``generation``, which the reporter compares
on every submit without another syscall.
"""
import os
import random
from contextvars import ContextVar

# True in spyglass's own threads (the reporter): instrumentation records nothing there,
# so the sensor's export requests are never traced.
suppressed: ContextVar = ContextVar("spyglass.suppressed", default=False)

_generator = random.Random()
_getrandbits = _generator.getrandbits
_pid = os.getpid()
# Bumped on every fork seen; the reporter compares it instead of asking for the pid again.
generation = 0


def reseed():
    global _pid, generation
    _pid = os.getpid()
    generation += 1
    _generator.seed(os.urandom(32))


def check_fork():
    """Re-seed when this process is a fork we were not told about. Costs one getpid()."""
    if os.getpid() != _pid:
        reseed()


def new_trace_id() -> int:
    return _getrandbits(128) or 1


def new_span_id() -> int:
    return _getrandbits(64) or 1


os.register_at_fork(after_in_child=reseed)
