"""gunicorn: each worker reports from its first second, with its own ids and queue.

gunicorn forks with ``os.fork``, so the at-fork hooks already give each worker new trace
ids, an empty queue and fresh metrics. This makes the worker's reporter thread start as
the worker boots, before any request (an idle worker still reports runtime metrics), and
also covers a worker class that forks some other way. A worker's exit is a normal
interpreter exit (``sys.exit``): atexit drains what it queued, on graceful stop, reload
(HUP) and ``max_requests`` recycling alike.

``Worker.init_process`` is patched to call ``agent.resume_in_child()`` first.
"""
from ._patch import Patch, Supports, first

SUPPORTS = Supports("gunicorn", "20.0")
TIMING = None
PATCHES = (
    Patch("gunicorn.workers.base", "Worker", init_process="resuming_worker"),
)


def resuming_worker(original, agent):
    return first(original, agent.resume_in_child, "prepare the gunicorn worker")
