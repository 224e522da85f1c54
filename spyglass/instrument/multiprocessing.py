"""Process pools: the workers of ``multiprocessing.Pool`` and
``concurrent.futures.ProcessPoolExecutor`` (fork, forkserver and spawn) and of billiard
(Celery's prefork pool, which shares ``multiprocessing.util``) end in ``os._exit``, which
skips atexit: what they traced would never be sent.

Their bootstrap runs the after-fork callbacks of ``multiprocessing.util`` when the worker
starts and its finalizers when the worker's work is done, just before ``os._exit`` (the
same way the pool flushes its own queues). A callback registered here adds a finalizer
that runs the reporter's at-exit drain, bounded by ``shutdown_timeout``.

Patches nothing: it only registers with the library's own hooks, once, when the registry
sets it up; ``teardown`` takes the callback and the finalizers back out.
"""
import functools

SUPPORTS = None  # the standard library's own (and billiard, its fork)
TIMING = None
PATCHES = ()


class Registration:
    """The after-fork callback registered with ``util`` (``multiprocessing.util``, as
    imported by multiprocessing or billiard) and the finalizers it added."""

    def __init__(self, util, reporter):
        self.util = util
        self.after_fork = functools.partial(_drain_when_done, self)
        self.finalizers = []
        util.register_after_fork(reporter, self.after_fork)


def setup(agent, util):
    return Registration(util, agent.reporter)


def teardown(registration):
    # multiprocessing has no way to unregister an after-fork callback but its registry.
    registry = registration.util._afterfork_registry
    for key in [key for key in list(registry.keys()) if key[2] is registration.after_fork]:
        registry.pop(key, None)
    for finalizer in registration.finalizers:
        finalizer.cancel()
    registration.finalizers.clear()


def _drain_when_done(registration, reporter):
    # In a worker that is starting: the finalizers were just cleared, ours comes after.
    registration.finalizers.append(
        registration.util.Finalize(reporter, reporter.at_exit, exitpriority=0))
