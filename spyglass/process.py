"""Process-wide state shared by the tracer and the reporter, kept light on purpose (the
reporter imports it at startup; it must not pull in opentracing or the tracer):

- trace and span ids: 128-bit and 64-bit, never zero, unique across forked workers;
- fork detection: ``fork_marker[0]`` reads 0 in a forked child not yet seen, and
  ``generation`` changes once it is seen;
- ``suppressed``: true in spyglass's own threads, where instrumentation records nothing.

A forked child inherits the parent's generator state, so two uWSGI workers would hand out
the same ids. ``os.register_at_fork`` covers ``os.fork``; uWSGI forks in C and skips it,
so every new local trace reads ``fork_marker`` (and uWSGI's post-fork hook calls
``check_fork``); a fork re-seeds and bumps ``generation``, which the reporter compares on
every submit.
"""
import mmap
import os
import random
import sys
from contextvars import ContextVar

# The running agent, or None: spyglass.agent.start sets it, once. What runs on the app's
# calls below the agent (error capture) finds it here, without importing the agent.
agent = None

# True in spyglass's own threads (the reporter): instrumentation records nothing there,
# so the sensor's export requests are never traced.
suppressed: ContextVar = ContextVar("spyglass.suppressed", default=False)

_generator = random.Random()
_getrandbits = _generator.getrandbits
_pid = os.getpid()
# Bumped on every fork seen; the reporter compares it instead of looking for a fork itself.
generation = 0

# Not in every build's mmap module; the value is Linux's own (since 4.14).
_MADV_WIPEONFORK = getattr(mmap, "MADV_WIPEONFORK", 18 if sys.platform == "linux" else None)


def _page_wiped_on_fork():
    """One private page whose first byte we set to 1, and which the kernel hands any forked
    child zeroed, however the fork was made (MADV_WIPEONFORK): reading it tells a fork
    for a tenth of a getpid() system call. None where the kernel cannot do it."""
    if _MADV_WIPEONFORK is None:
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        page.madvise(_MADV_WIPEONFORK)
    except (AttributeError, OSError, ValueError):
        return None
    page[0] = 1
    return page


class _PidComparison:
    """``fork_marker`` where no page can be wiped on fork: 1 while the pid is the one the
    ids were seeded in, by asking for the pid each time."""

    def __getitem__(self, index):
        return os.getpid() == _pid

    def __setitem__(self, index, value):
        pass  # reseed() has recorded the new pid


# fork_marker[0]: 1 in the process that seeded the ids, 0 in a fork not yet re-seeded.
fork_marker = _page_wiped_on_fork() or _PidComparison()


def reseed():
    global _pid, generation
    _pid = os.getpid()
    generation += 1
    _generator.seed(os.urandom(32))
    fork_marker[0] = 1


def check_fork():
    """Re-seed when this process is a fork we were not told about."""
    if not fork_marker[0]:
        reseed()


os.register_at_fork(after_in_child=reseed)
