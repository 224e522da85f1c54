"""gunicorn: each worker reports from its first second, with its own ids and queue.

gunicorn forks with ``os.fork``, so the at-fork hooks already give each worker new trace
ids, an empty queue and fresh metrics. This makes the worker's reporter thread start as
the worker boots, before any request (an idle worker still reports runtime metrics), and
also covers a worker class that forks some other way. A worker's exit is a normal
interpreter exit (``sys.exit``): atexit drains what it queued, on graceful stop, reload
(HUP) and ``max_requests`` recycling alike.

=============================================  ==========================================
``gunicorn.workers.base.Worker.init_process``  first: ``agent.resume_in_child()``
=============================================  ==========================================
"""
import logging

import wrapt

log = logging.getLogger("spyglass")


def install(agent, module):
    def init_process(wrapped, instance, args, kwargs):
        try:
            agent.resume_in_child()
        except Exception:
            log.exception("spyglass: could not prepare the gunicorn worker")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Worker.init_process", init_process)
