"""Process pools: the workers of ``multiprocessing.Pool`` and
``concurrent.futures.ProcessPoolExecutor`` (fork, forkserver and spawn) and of billiard
(Celery's prefork pool, which shares ``multiprocessing.util``) end in ``os._exit``, which
skips atexit: what they traced would never be sent.

Their bootstrap runs the after-fork callbacks of ``multiprocessing.util`` when the worker
starts and its finalizers when the worker's work is done, just before ``os._exit`` (the
same way the pool flushes its own queues). A callback registered here adds a finalizer
that runs the reporter's at-exit drain, bounded by ``shutdown_timeout``.

Patches nothing: it only registers with the library's own hooks, once, when the registry
sets it up.
"""
import functools

SUPPORTS = None  # the standard library's own (and billiard, its fork)
TIMING = None
PATCHES = ()


def setup(agent, util):
    """``util``: ``multiprocessing.util``, as imported by multiprocessing or billiard."""
    util.register_after_fork(agent.reporter, functools.partial(_drain_when_done, util))
    return agent


def _drain_when_done(util, reporter):
    # In a worker that is starting: the finalizers were just cleared, ours comes after.
    util.Finalize(reporter, reporter.at_exit, exitpriority=0)
